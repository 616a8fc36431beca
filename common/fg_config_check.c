/* fg_config_check.c - single-value syntax rules of the config model: names, route paths,
 * header names and values, digests, timestamps, method and enum names.
 *
 * Shared by the decoder (which reports with the JSON path it is at) and the validator
 * (which re-checks models that a caller may have assembled by hand), so both planes and
 * every input format refuse exactly the same values with exactly the same words. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "fg_config.h"
#include "fg_config_internal.h"

bool fg_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    if (n == 0 || n > FG_NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static const struct {
    const char *name;
    unsigned bit;
} method_table[] = {
    {"GET", FG_METHOD_GET},         {"HEAD", FG_METHOD_HEAD},   {"POST", FG_METHOD_POST},
    {"PUT", FG_METHOD_PUT},         {"DELETE", FG_METHOD_DELETE}, {"PATCH", FG_METHOD_PATCH},
    {"OPTIONS", FG_METHOD_OPTIONS}, {"CONNECT", FG_METHOD_CONNECT}, {"TRACE", FG_METHOD_TRACE},
};

/* Exact, case-sensitive: HTTP methods are case-sensitive tokens (RFC 9110 §9.1). */
unsigned fg_method_bit(const char *method, size_t len)
{
    if (!method)
        return 0;
    for (size_t i = 0; i < sizeof(method_table) / sizeof(method_table[0]); i++) {
        if (strlen(method_table[i].name) == len && memcmp(method_table[i].name, method, len) == 0)
            return method_table[i].bit;
    }
    return 0;
}

const char *fg__method_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof(method_table) / sizeof(method_table[0]); i++)
        if (method_table[i].bit == bit)
            return method_table[i].name;
    return NULL;
}

const char *fg_auth_mode_name(fg_auth_mode_t m)
{
    switch (m) {
    case FG_AUTH_OPTIONAL:
        return "optional";
    case FG_AUTH_REQUIRED:
        return "required";
    case FG_AUTH_NONE:
    default:
        return "none";
    }
}

const char *fg_lb_policy_name(fg_lb_policy_t p)
{
    switch (p) {
    case FG_LB_LEAST_CONN:
        return "least-conn";
    case FG_LB_RANDOM_TWO:
        return "random-two-choices";
    case FG_LB_CONSISTENT_HASH:
        return "consistent-hash";
    case FG_LB_ROUND_ROBIN:
    default:
        return "round-robin";
    }
}

const char *fg__route_path_problem(const char *path)
{
    if (!path || !*path)
        return "required";
    if (path[0] != '/')
        return "must start with '/'";
    size_t n = strlen(path);
    if (n > FG_PATH_MAX_LEN)
        return "is too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= 0x20 || c >= 0x7f)
            return "must not contain spaces, control or non-ASCII characters (percent-encode them)";
        if (c == '?' || c == '#')
            return "must not contain '?' or '#'";
        if (c == '*' && !(i == n - 1 && i > 0 && path[i - 1] == '/'))
            return "'*' is only allowed as a final \"/*\"";
    }
    return NULL;
}

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

const char *fg__header_name_problem(const char *name)
{
    if (!name || !*name)
        return "header name must not be empty";
    size_t n = strlen(name);
    if (n > FG_HEADER_NAME_MAX_LEN)
        return "header name is too long";
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)name[i]))
            return "header name must be an HTTP token";
    return NULL;
}

/* Header names the proxy writes itself (framing, hop-by-hop, Host, X-Forwarded-*, trace
 * context) or reads credentials from. A header the config names for the proxy to write (the
 * key's identity, the request id) must be none of them, or two copies would go upstream. */
static const char *proxy_header_problem(const char *name)
{
    static const char *const reserved[] = {
        "host", "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate",
        "content-length", "expect", "x-forwarded-for", "x-forwarded-proto",
        "x-forwarded-host", "traceparent", "tracestate", "authorization",
    };
    const char *why = fg__header_name_problem(name);
    if (why)
        return why;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return "must not be a header the proxy writes or reads credentials from";
    return NULL;
}

const char *fg__identity_header_problem(const char *name)
{
    return proxy_header_problem(name);
}

const char *fg__request_id_header_problem(const char *name)
{
    const char *why = proxy_header_problem(name);
    if (!why && strlen(name) > FG_REQUEST_ID_HEADER_MAX_LEN)
        why = "header name is too long";
    return why;
}

const char *fg__header_value_problem(const char *value)
{
    if (!value)
        return "header value must be a string";
    size_t n = strlen(value);
    if (n > FG_HEADER_VALUE_MAX_LEN)
        return "header value is too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return "header value must not contain CR, LF or control characters";
    }
    return NULL;
}

const char *fg__hash_on_problem(const char *hash_on)
{
    if (!hash_on)
        return NULL;
    if (strcmp(hash_on, "ip") == 0)
        return NULL;
    const char *name = NULL;
    if (strncmp(hash_on, "header:", 7) == 0)
        name = hash_on + 7;
    else if (strncmp(hash_on, "cookie:", 7) == 0)
        name = hash_on + 7;
    if (!name || fg__header_name_problem(name))
        return "must be \"ip\", \"header:NAME\" or \"cookie:NAME\"";
    return NULL;
}

bool fg__double_is_integer(double v)
{
    if (v != v || v - v != 0) /* NaN, or an infinity (inf - inf is NaN) */
        return false;
    /* Every double of magnitude 2^53 or more is an integer; below that the cast is exact. */
    if (v >= 9007199254740992.0 || v <= -9007199254740992.0)
        return true;
    return (double)(int64_t)v == v;
}

bool fg__key_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > FG_NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

bool fg__sha256_hex_valid(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool fg__utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i];
        size_t n;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 2, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((u[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool take_digits(const char **p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + (unsigned)((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool take_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

int fg__rfc3339_parse(const char *s, uint64_t *out_ms)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned year, mon, day, hh, mm, ss, ms = 0;
    const char *p = s;
    int64_t offset_min = 0;

    if (!s)
        return -EINVAL;
    if (!take_digits(&p, 4, &year) || !take_char(&p, '-') || !take_digits(&p, 2, &mon) ||
        !take_char(&p, '-') || !take_digits(&p, 2, &day))
        return -EINVAL;
    if (*p != 'T' && *p != 't')
        return -EINVAL;
    p++;
    if (!take_digits(&p, 2, &hh) || !take_char(&p, ':') || !take_digits(&p, 2, &mm) ||
        !take_char(&p, ':') || !take_digits(&p, 2, &ss))
        return -EINVAL;
    if (*p == '.') {
        unsigned scale = 100;
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        while (isdigit((unsigned char)*p)) { /* digits past ms are allowed and dropped */
            ms += (unsigned)(*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        unsigned oh, om;
        p++;
        if (!take_digits(&p, 2, &oh) || !take_char(&p, ':') || !take_digits(&p, 2, &om) ||
            oh > 23 || om > 59)
            return -EINVAL;
        offset_min = sign * (int64_t)(oh * 60 + om);
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hh > 23 || mm > 59 || ss > 60)
        return -EINVAL;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon == 2 && day == 29 && !leap)
        return -EINVAL;
    if (ss == 60)
        ss = 59; /* a leap second names the last second of its minute */

    int64_t secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss -
                   offset_min * 60;
    if (secs < 0)
        return -EINVAL;
    *out_ms = (uint64_t)secs * 1000u + ms;
    return 0;
}

const char *fg__http_path_problem(const char *path)
{
    if (!path)
        return NULL;
    if (path[0] != '/')
        return "must start with '/'";
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || *c == '#')
            return "must not contain spaces, '#', control or non-ASCII characters";
    return NULL;
}
