//! Go: `examples/go-memcached` on the SDK in `sdk/go`, built with mainline Go
//! (≥ 1.24, `GOOS=wasip1 GOARCH=wasm -buildmode=c-shared`: a wasip1 reactor
//! whose `//go:wasmexport` / `//go:wasmimport` functions are the canonical-ABI
//! glue, written by hand in `sdk/go/abi_wasip1.go` and checked against the WIT
//! by the SDK's tests with the layout [`super::go_abi`] writes), then made a
//! component:
//! `wasm-tools component embed` (the WIT, world `reconciler`) and
//! `wasm-tools component new --adapt wasi_snapshot_preview1=<reactor adapter>`.
//!
//! The pinned tools live under [`super::common::toolchains_root`], never in
//! the clone: `wasm-tools-<ver>/` (`cargo install --locked`) and
//! `preview1-adapter-<ver>/` (the reactor adapter's bytes, written by a
//! scratch crate depending on `wasi-preview1-component-adapter-provider`).
//! The C example shares both.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::common::{
    READY_MARKER, finish, memcached_crd, run, toolchains_root, up_to_date, write_if_changed,
};

/// `wasm-tools`, from crates.io.
pub const WASM_TOOLS_VERSION: &str = "1.263.0";
/// `wasi-preview1-component-adapter-provider`: the host's wasmtime release.
pub const ADAPTER_VERSION: &str = "48.0.8";
/// The oldest Go with `//go:wasmexport`.
const MIN_GO_MINOR: u32 = 24;

/// Builds `out_dir/go_memcached.wasm`, skipping when it is newer than the
/// example, the SDK and the WIT.
pub fn build(root: &Path, out_dir: &Path) -> Result<PathBuf> {
    let example = root.join("examples/go-memcached");
    let out = out_dir.join("go_memcached.wasm");
    // The CRD is embedded with go:embed, which reads only inside the module:
    // keep the copy equal to the Rust example's, the one source.
    write_if_changed(&example.join("crd.json"), &(memcached_crd(root)? + "\n"))?;
    // What the SDK's layout test compares its ABI structs with.
    super::go_abi::write_layout(root)?;
    let sources = [example.clone(), root.join("sdk/go"), root.join("wit")];
    if up_to_date(&out, &sources)? {
        eprintln!("xtask: go: {} is up to date", out.display());
        return Ok(out);
    }
    let go = find_go()?;
    let wasm_tools = wasm_tools()?;
    let adapter = reactor_adapter()?;
    std::fs::create_dir_all(out_dir)?;

    let overlay = runtime_overlay(&go, &out_dir.join("go-runtime-overlay"))?;
    let core = out_dir.join("go_memcached.core.wasm");
    eprintln!(
        "xtask: go: building {} (GOOS=wasip1 GOARCH=wasm)",
        example.display()
    );
    run(Command::new(&go)
        .current_dir(&example)
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .env("GOTOOLCHAIN", "local")
        .args([
            "build",
            "-trimpath",
            "-ldflags=-s -w",
            "-buildmode=c-shared",
        ])
        .arg("-overlay")
        .arg(&overlay)
        .arg("-o")
        .arg(&core)
        .arg("."))?;
    let tmp = out_dir.join("go_memcached.wasm.tmp");
    componentize(&wasm_tools, root, &core, &adapter, &tmp, "go", true)?;
    let _ = std::fs::remove_file(&core);
    finish("go", &tmp, &out)
}

/// `embed` the WIT into a core module, then `component new` with the
/// reactor adapter. `realloc_via_memory_grow`: the adapter takes its memory
/// with `memory.grow` instead of the module's `cabi_realloc` (needed when
/// that cannot run before the module's `_initialize`, as with Go).
pub(super) fn componentize(
    wasm_tools: &Path,
    root: &Path,
    core: &Path,
    adapter: &Path,
    out: &Path,
    lang: &str,
    realloc_via_memory_grow: bool,
) -> Result<()> {
    let embedded = out.with_extension("embedded.wasm");
    eprintln!("xtask: {lang}: wasm-tools component embed + new");
    run(Command::new(wasm_tools)
        .args(["component", "embed", "--world", "reconciler"])
        .arg(root.join("wit"))
        .arg(core)
        .arg("-o")
        .arg(&embedded))?;
    componentize_embedded(wasm_tools, &embedded, adapter, out, realloc_via_memory_grow)?;
    let _ = std::fs::remove_file(&embedded);
    Ok(())
}

/// `component new` with the reactor adapter, for a module that already
/// carries its component type.
pub(super) fn componentize_embedded(
    wasm_tools: &Path,
    module: &Path,
    adapter: &Path,
    out: &Path,
    realloc_via_memory_grow: bool,
) -> Result<()> {
    let mut adapt = std::ffi::OsString::from("wasi_snapshot_preview1=");
    adapt.push(adapter);
    let mut cmd = Command::new(wasm_tools);
    cmd.args(["component", "new"]).arg(module);
    if realloc_via_memory_grow {
        cmd.arg("--realloc-via-memory-grow");
    }
    run(cmd.arg("--adapt").arg(adapt).arg("-o").arg(out))
}

/// Writes a `go build -overlay` file that patches two files of the local Go
/// runtime (`runtime/os_wasm.go`, `runtime/mem_sbrk.go`) and returns its
/// path.
///
/// Why: in a component, Go's `_initialize` runs after the WASI preview1
/// adapter was instantiated, and the runtime's first WASI calls make the
/// adapter allocate its stack and state. Go cannot serve `cabi_realloc` before
/// `_initialize` has finished, so the adapter must use `memory.grow`
/// (`--realloc-via-memory-grow`); but Go's wasm runtime assumes it alone grows
/// linear memory (it takes the initial memory as its own and grows its break
/// by deltas), so it would hand the adapter's pages out again as heap. The
/// patch makes the runtime start with its break at the end of its data and,
/// before each allocation, move the break past memory that someone else has
/// grown meanwhile. Applied by text to the installed runtime so it follows
/// the Go version; fails loudly if an anchor moved.
fn runtime_overlay(go: &Path, dir: &Path) -> Result<PathBuf> {
    let out = Command::new(go)
        .args(["env", "GOROOT"])
        .output()
        .context("go env GOROOT")?;
    let goroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let runtime = goroot.join("src/runtime");
    std::fs::create_dir_all(dir)?;
    let patch = |file: &str, edit: &dyn Fn(&str) -> Option<String>| -> Result<(PathBuf, PathBuf)> {
        let original = runtime.join(file);
        let text = std::fs::read_to_string(&original)
            .with_context(|| format!("reading {}", original.display()))?;
        let patched = edit(&text).with_context(|| {
            format!(
                "{}: the Go runtime changed; update the overlay in xtask/src/langs/go.rs",
                original.display()
            )
        })?;
        let copy = dir.join(file);
        write_if_changed(&copy, &patched)?;
        Ok((original, copy))
    };
    let os = patch("os_wasm.go", &|t| {
        let line = "\tblocMax = uintptr(currentMemory()) * physPageSize // record the initial linear memory size\n";
        t.contains(line).then(|| {
            t.replace(line, "\t// operon overlay: pages past the data may be the WASI adapter's (see syncBreak).\n")
        })
    })?;
    let sbrk = patch("mem_sbrk.go", &|t| {
        let lock = "\t\tlock(&memlock)\n";
        (t.matches(lock).count() >= 3 && t.contains("func sysReserveAlignedSbrk")).then(|| {
            t.replace(lock, "\t\tlock(&memlock)\n\t\tsyncBreak()\n")
                + "\n// syncBreak (operon overlay): linear memory grown by someone else since the\n\
                   // runtime last grew it (a component's WASI adapter takes its pages with\n\
                   // memory.grow) is not the runtime's: move the break past it.\n\
                   func syncBreak() {\n\
                   \tif end := uintptr(currentMemory()) * physPageSize; end > blocMax {\n\
                   \t\tbloc, blocMax = end, end\n\
                   \t}\n\
                   }\n"
        })
    })?;
    let json_str = |p: &Path| format!("{:?}", p.display().to_string());
    let overlay = dir.join("overlay.json");
    write_if_changed(
        &overlay,
        &format!(
            "{{\"Replace\": {{{}: {}, {}: {}}}}}\n",
            json_str(&os.0),
            json_str(&os.1),
            json_str(&sbrk.0),
            json_str(&sbrk.1)
        ),
    )?;
    Ok(overlay)
}

/// `go` on PATH, or in `/usr/local/go/bin` (where the official archive puts
/// it), at least 1.24.
fn find_go() -> Result<PathBuf> {
    let candidates = [PathBuf::from("go"), PathBuf::from("/usr/local/go/bin/go")];
    let mut seen = Vec::new();
    for go in candidates {
        let Ok(out) = Command::new(&go).arg("env").arg("GOVERSION").output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let minor = version
            .strip_prefix("go1.")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|m| m.parse::<u32>().ok());
        if minor.is_some_and(|m| m >= MIN_GO_MINOR) {
            return Ok(go);
        }
        seen.push(format!("{} is {version}", go.display()));
    }
    if seen.is_empty() {
        bail!(
            "no `go` found (PATH or /usr/local/go/bin): the Go example needs Go ≥ 1.{MIN_GO_MINOR}"
        );
    }
    bail!(
        "the Go example needs Go ≥ 1.{MIN_GO_MINOR} (//go:wasmexport); found only: {}",
        seen.join(", ")
    )
}

/// Installs a crates.io binary into `<toolchains>/<dir>` with `cargo
/// install --locked` unless already there; returns the binary.
///
/// Only `features` are built (`--no-default-features`): the default
/// features of `wasm-tools` and `wit-bindgen-cli` compile every subcommand
/// and every language, about 15 of a cold CI run's minutes for the two
/// subcommands the examples use.
pub(super) fn cargo_install(
    krate: &str,
    version: &str,
    bin: &str,
    dir: &str,
    features: &str,
) -> Result<PathBuf> {
    let root = toolchains_root().join(dir);
    let exe = root.join("bin").join(bin);
    if root.join(READY_MARKER).exists() && exe.exists() {
        return Ok(exe);
    }
    eprintln!(
        "xtask: installing {krate} {version} into {} (first time only)",
        root.display()
    );
    // A private build directory (not the workspace's, which cargo may hold).
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .env_remove("CARGO_TARGET_DIR")
            .args([
                "install",
                "--locked",
                "--quiet",
                krate,
                "--version",
                version,
                "--no-default-features",
                "--features",
                features,
                "--root",
            ])
            .arg(&root),
    )?;
    std::fs::write(root.join(READY_MARKER), "")?;
    Ok(exe)
}

/// The pinned `wasm-tools`.
pub(super) fn wasm_tools() -> Result<PathBuf> {
    cargo_install(
        "wasm-tools",
        WASM_TOOLS_VERSION,
        "wasm-tools",
        &format!("wasm-tools-{WASM_TOOLS_VERSION}"),
        // `component embed` and `component new`.
        "component",
    )
}

/// The `wasi_snapshot_preview1` reactor adapter (a core module that
/// implements preview1 on WASI 0.2), written once from the crate that ships it.
pub(super) fn reactor_adapter() -> Result<PathBuf> {
    let dir = toolchains_root().join(format!("preview1-adapter-{ADAPTER_VERSION}"));
    let adapter = dir.join("wasi_snapshot_preview1.reactor.wasm");
    if dir.join(READY_MARKER).exists() && adapter.exists() {
        return Ok(adapter);
    }
    eprintln!(
        "xtask: writing the preview1 reactor adapter {ADAPTER_VERSION} into {}",
        dir.display()
    );
    let src = dir.join("writer");
    std::fs::create_dir_all(src.join("src"))?;
    std::fs::write(
        src.join("Cargo.toml"),
        format!(
            "[package]\nname = \"write-adapter\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nwasi-preview1-component-adapter-provider = \"={ADAPTER_VERSION}\"\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(
        src.join("src/main.rs"),
        "fn main() {\n    let out = std::env::args().nth(1).expect(\"usage: write-adapter OUT\");\n    \
         std::fs::write(out, wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)\n        \
         .expect(\"writing the adapter\");\n}\n",
    )?;
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", src.join("target"))
            .args(["run", "--quiet", "--release", "--"])
            .arg(&adapter),
    )
    .context("writing the preview1 reactor adapter")?;
    let _ = std::fs::remove_dir_all(src.join("target"));
    std::fs::write(dir.join(READY_MARKER), "")?;
    Ok(adapter)
}
