/* A small JSON reader and writer: just what the memcached reconciler needs.
 *
 * The reader builds a tree of json_value (objects keep their key order).
 * Memory comes from malloc and is never freed: the host runs every reconcile
 * in a fresh instance, so the whole heap goes away with it. */
#ifndef OPERON_JSON_H
#define OPERON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    bool boolean;
    double number;
    bool is_int;       /* a number written without fraction or exponent that fits int64 */
    int64_t integer;
    char *string;      /* NUL-terminated (strings with NUL bytes are cut there) */
    size_t len;        /* items of an array or members of an object */
    json_value **items;
    char **keys;       /* object member names, parallel to items */
};

/* Parses text of length n; NULL (and *error set) if it is not one JSON value. */
json_value *json_parse(const char *text, size_t n, const char **error);

/* Member of an object by name, or NULL (also when v is not an object). */
json_value *json_get(const json_value *v, const char *key);
/* Walks members by a NULL-terminated list of names. */
json_value *json_path(const json_value *v, ...);
/* The string, or NULL when v is not a string. */
const char *json_str(const json_value *v);
/* Whether v is an integer; its value in *out. */
bool json_int(const json_value *v, int64_t *out);

/* A growing output buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} json_buf;

void buf_raw(json_buf *b, const char *s);
void buf_printf(json_buf *b, const char *fmt, ...);
/* A JSON string literal, escaped. */
void buf_str(json_buf *b, const char *s);
/* Writes v back as JSON. */
void buf_value(json_buf *b, const json_value *v);

#endif
