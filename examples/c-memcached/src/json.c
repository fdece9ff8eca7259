#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end;
    const char *error;
    int depth;
} parser;

static void *xalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static json_value *fail(parser *ps, const char *msg) {
    if (!ps->error) ps->error = msg;
    return NULL;
}

static json_value *new_value(json_type t) {
    json_value *v = xalloc(sizeof *v);
    memset(v, 0, sizeof *v);
    v->type = t;
    return v;
}

static void put_utf8(json_buf *b, uint32_t c);

static int hex4(parser *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) return 0;
    uint32_t c = 0;
    for (int i = 0; i < 4; i++) {
        char h = *ps->p++;
        c <<= 4;
        if (h >= '0' && h <= '9') c |= (uint32_t)(h - '0');
        else if (h >= 'a' && h <= 'f') c |= (uint32_t)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') c |= (uint32_t)(h - 'A' + 10);
        else return 0;
    }
    *out = c;
    return 1;
}

/* Parses a string literal (ps->p at the opening quote) into a new buffer. */
static char *parse_string(parser *ps) {
    json_buf b = {0};
    ps->p++;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) { fail(ps, "control character in string"); return NULL; }
        if (c != '\\') {
            char s[2] = {(char)c, 0};
            buf_raw(&b, s);
            continue;
        }
        if (ps->p >= ps->end) break;
        char e = *ps->p++;
        switch (e) {
        case '"': buf_raw(&b, "\""); break;
        case '\\': buf_raw(&b, "\\"); break;
        case '/': buf_raw(&b, "/"); break;
        case 'b': buf_raw(&b, "\b"); break;
        case 'f': buf_raw(&b, "\f"); break;
        case 'n': buf_raw(&b, "\n"); break;
        case 'r': buf_raw(&b, "\r"); break;
        case 't': buf_raw(&b, "\t"); break;
        case 'u': {
            uint32_t c1;
            if (!hex4(ps, &c1)) { fail(ps, "bad \\u escape"); return NULL; }
            if (c1 >= 0xD800 && c1 < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                uint32_t c2;
                ps->p += 2;
                if (!hex4(ps, &c2) || c2 < 0xDC00 || c2 > 0xDFFF) { fail(ps, "bad surrogate pair"); return NULL; }
                c1 = 0x10000 + ((c1 - 0xD800) << 10) + (c2 - 0xDC00);
            }
            put_utf8(&b, c1);
            break;
        }
        default: fail(ps, "bad escape"); return NULL;
        }
    }
    if (ps->p >= ps->end) { fail(ps, "unterminated string"); return NULL; }
    ps->p++;
    if (!b.data) buf_raw(&b, "");
    return b.data;
}

static json_value *parse_value(parser *ps);

static json_value *parse_number(parser *ps) {
    const char *start = ps->p;
    bool integral = true;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    while (ps->p < ps->end && strchr("0123456789.eE+-", *ps->p)) {
        if (strchr(".eE", *ps->p)) integral = false;
        ps->p++;
    }
    size_t n = (size_t)(ps->p - start);
    if (n == 0 || n > 63) return fail(ps, "bad number");
    char tmp[64];
    memcpy(tmp, start, n);
    tmp[n] = 0;
    char *end;
    json_value *v = new_value(JSON_NUMBER);
    v->number = strtod(tmp, &end);
    if (*end) return fail(ps, "bad number");
    if (integral) {
        long long i = strtoll(tmp, &end, 10);
        if (!*end && (double)i == v->number) {
            v->is_int = true;
            v->integer = i;
        }
    }
    return v;
}

static bool literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return false;
    ps->p += n;
    return true;
}

static void push(json_value *v, char *key, json_value *item) {
    v->items = realloc(v->items, (v->len + 1) * sizeof *v->items);
    if (!v->items) abort();
    v->items[v->len] = item;
    if (v->type == JSON_OBJECT) {
        v->keys = realloc(v->keys, (v->len + 1) * sizeof *v->keys);
        if (!v->keys) abort();
        v->keys[v->len] = key;
    }
    v->len++;
}

static json_value *parse_container(parser *ps, json_type t) {
    char close = t == JSON_ARRAY ? ']' : '}';
    json_value *v = new_value(t);
    if (++ps->depth > 128) return fail(ps, "nested too deeply");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (t == JSON_OBJECT) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a member name");
            if (!(key = parse_string(ps))) return NULL;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        json_value *item = parse_value(ps);
        if (!item) return NULL;
        push(v, key, item);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == close) { ps->p++; break; }
        return fail(ps, t == JSON_ARRAY ? "expected ',' or ']'" : "expected ',' or '}'");
    }
    ps->depth--;
    return v;
}

static json_value *parse_value(parser *ps) {
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    char c = *ps->p;
    if (c == '{') return parse_container(ps, JSON_OBJECT);
    if (c == '[') return parse_container(ps, JSON_ARRAY);
    if (c == '"') {
        char *s = parse_string(ps);
        if (!s) return NULL;
        json_value *v = new_value(JSON_STRING);
        v->string = s;
        return v;
    }
    if (literal(ps, "null")) return new_value(JSON_NULL);
    if (literal(ps, "true") || literal(ps, "false")) {
        json_value *v = new_value(JSON_BOOL);
        v->boolean = ps->p[-1] == 'e' && ps->p[-2] == 'u';
        return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps);
    return fail(ps, "unexpected character");
}

json_value *json_parse(const char *text, size_t n, const char **error) {
    parser ps = {text, text + n, NULL, 0};
    json_value *v = parse_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end) v = fail(&ps, "trailing characters");
    }
    if (!v && error) *error = ps.error;
    return v;
}

json_value *json_get(const json_value *v, const char *key) {
    if (!v || v->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(v->keys[i], key) == 0) return v->items[i];
    return NULL;
}

json_value *json_path(const json_value *v, ...) {
    va_list ap;
    va_start(ap, v);
    const char *key;
    json_value *cur = (json_value *)v;
    while ((key = va_arg(ap, const char *)) != NULL) cur = json_get(cur, key);
    va_end(ap);
    return cur;
}

const char *json_str(const json_value *v) { return v && v->type == JSON_STRING ? v->string : NULL; }

bool json_int(const json_value *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER || !v->is_int) return false;
    *out = v->integer;
    return true;
}

static void reserve(json_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) abort();
    b->cap = cap;
}

void buf_raw(json_buf *b, const char *s) {
    size_t n = strlen(s);
    reserve(b, n);
    memcpy(b->data + b->len, s, n + 1);
    b->len += n;
}

void buf_printf(json_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void put_utf8(json_buf *b, uint32_t c) {
    char s[5] = {0};
    if (c < 0x80) s[0] = (char)c;
    else if (c < 0x800) { s[0] = (char)(0xC0 | c >> 6); s[1] = (char)(0x80 | (c & 0x3F)); }
    else if (c < 0x10000) { s[0] = (char)(0xE0 | c >> 12); s[1] = (char)(0x80 | (c >> 6 & 0x3F)); s[2] = (char)(0x80 | (c & 0x3F)); }
    else { s[0] = (char)(0xF0 | c >> 18); s[1] = (char)(0x80 | (c >> 12 & 0x3F)); s[2] = (char)(0x80 | (c >> 6 & 0x3F)); s[3] = (char)(0x80 | (c & 0x3F)); }
    if (c == 0) return; /* strings are NUL-terminated: a \u0000 is dropped */
    buf_raw(b, s);
}

void buf_str(json_buf *b, const char *s) {
    buf_raw(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') buf_raw(b, "\\\"");
        else if (c == '\\') buf_raw(b, "\\\\");
        else if (c == '\n') buf_raw(b, "\\n");
        else if (c == '\r') buf_raw(b, "\\r");
        else if (c == '\t') buf_raw(b, "\\t");
        else if (c < 0x20) buf_printf(b, "\\u%04x", c);
        else {
            char one[2] = {(char)c, 0};
            buf_raw(b, one);
        }
    }
    buf_raw(b, "\"");
}

void buf_value(json_buf *b, const json_value *v) {
    switch (v->type) {
    case JSON_NULL: buf_raw(b, "null"); break;
    case JSON_BOOL: buf_raw(b, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER:
        if (v->is_int) buf_printf(b, "%lld", (long long)v->integer);
        else buf_printf(b, "%.17g", v->number);
        break;
    case JSON_STRING: buf_str(b, v->string); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        buf_raw(b, v->type == JSON_ARRAY ? "[" : "{");
        for (size_t i = 0; i < v->len; i++) {
            if (i) buf_raw(b, ",");
            if (v->type == JSON_OBJECT) {
                buf_str(b, v->keys[i]);
                buf_raw(b, ":");
            }
            buf_value(b, v->items[i]);
        }
        buf_raw(b, v->type == JSON_ARRAY ? "]" : "}");
        break;
    }
}
