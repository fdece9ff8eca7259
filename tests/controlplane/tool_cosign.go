package main

// cosign: the Sigstore signing CLI (github.com/sigstore/cosign), the common
// tool for signing OCI artifacts. The tests sign a pushed plugin with it
// (key pair, no transparency log) to show that operon verifies signatures
// made by the real tool, not only by its own test signer. The cloud KMS
// providers cosign's main registers are left out: local keys only.

import (
	"github.com/sigstore/cosign/v2/cmd/cosign/cli"
)

// runCosign mirrors github.com/sigstore/cosign/v2/cmd/cosign/main.go.
func runCosign(args []string) int {
	cmd := cli.New()
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		return 1
	}
	return 0
}
