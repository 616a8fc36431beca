/* fg_url.c - parsing upstream URLs and checking host names and addresses.
 *
 * The data plane connects to exactly what these functions accept, so they are strict: only
 * http and https, no user info (a classic way to hide the real host from a reader), no query
 * or fragment, hosts that are DNS names or address literals. A host whose last label is
 * numeric must be a dotted-quad IPv4 address: resolvers read "127.1" or "0x7f.1" as
 * addresses, and a config that means 127.0.0.1 must say so. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fg_config.h"
#include "fg_config_internal.h"

static bool is_host_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

/* A numeric-looking last label ("1", "0x7f") makes a resolver treat the name as an IPv4
 * address in one of its many legacy spellings. */
static bool last_label_numeric(const char *host, size_t len)
{
    size_t start = len;
    while (start > 0 && host[start - 1] != '.')
        start--;
    if (start == len)
        return false; /* trailing dot: a fully qualified DNS name */
    const char *label = host + start;
    size_t n = len - start;
    if (n >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X'))
        return true;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)label[i]))
            return false;
    return true;
}

/* Problem with a host name or IPv4 literal of `len` bytes (no brackets), or NULL. */
static const char *dns_host_problem(const char *host, size_t len)
{
    char buf[FG_HOST_MAX_LEN + 1];
    struct in_addr a4;

    if (len == 0)
        return "must have a host";
    if (len > FG_HOST_MAX_LEN)
        return "host name is too long";
    for (size_t i = 0; i < len; i++)
        if (!is_host_char((unsigned char)host[i]))
            return "host must be a DNS name or an IP address";
    if (host[0] == '.' || host[0] == '-' || strstr(host, "..") != NULL)
        return "host must be a DNS name or an IP address";
    if (last_label_numeric(host, len)) {
        memcpy(buf, host, len);
        buf[len] = '\0';
        if (inet_pton(AF_INET, buf, &a4) != 1)
            return "numeric host must be a dotted-quad IPv4 address";
    }
    return NULL;
}

static const char *ipv6_literal_problem(const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a6;
    if (len == 0 || len >= sizeof(buf))
        return "bad IPv6 address";
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1 ? NULL : "bad IPv6 address";
}

static int url_fail(fg_error_t *err, const char *field, const char *why)
{
    return fg_error_set(err, field, "%s", why);
}

static int url_parse_port(const char *p, size_t n, uint16_t *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 5)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -EINVAL;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

int fg_url_parse(const char *url, fg_arena_t *arena, fg_url_t *out, const char *field,
                 fg_error_t *err)
{
    const char *p, *auth_end, *host, *port = NULL;
    size_t host_len, port_len = 0, len;
    fg_url_t u = {0};

    if (!url || !*url)
        return url_fail(err, field, "must be an http:// or https:// URL");
    len = strlen(url);
    if (len > FG_URL_MAX_LEN)
        return fg_error_set(err, field, "must be at most %u characters", FG_URL_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return url_fail(err, field, "must not contain spaces, control or non-ASCII characters");
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        u.tls = true;
    } else {
        return url_fail(err, field, "must be an http:// or https:// URL");
    }

    auth_end = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(auth_end - p)))
        return url_fail(err, field, "must not contain user info ('@')");
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (!close)
            return url_fail(err, field, "bad IPv6 address");
        host = p + 1;
        host_len = (size_t)(close - host);
        const char *why = ipv6_literal_problem(host, host_len);
        if (why)
            return url_fail(err, field, why);
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                return url_fail(err, field, "bad IPv6 address");
            port = close + 2;
            port_len = (size_t)(auth_end - port);
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        host = p;
        host_len = (size_t)((colon ? colon : auth_end) - p);
        if (colon) {
            port = colon + 1;
            port_len = (size_t)(auth_end - port);
        }
        const char *why = dns_host_problem(host, host_len);
        if (why)
            return url_fail(err, field, why);
    }
    if (port) {
        if (url_parse_port(port, port_len, &u.port) != 0)
            return url_fail(err, field, "port must be a number between 1 and 65535");
    } else {
        u.port = u.tls ? 443 : 80;
    }

    if (*auth_end == '?' || *auth_end == '#' || strpbrk(auth_end, "?#"))
        return url_fail(err, field, "must not have a query or fragment");
    size_t path_len = strlen(auth_end);
    while (path_len > 0 && auth_end[path_len - 1] == '/')
        path_len--; /* the base path is a prefix: "/v1/" and "/v1" mean the same */

    char *h = fg_arena_strndup(arena, host, host_len);
    char *path = fg_arena_strndup(arena, auth_end, path_len);
    if (!h || !path)
        return fg_error_setc(err, -ENOMEM, field, "out of memory");
    for (char *c = h; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    u.host = h;
    u.path = path;
    *out = u;
    return 0;
}

const char *fg__host_pattern_problem(const char *pattern)
{
    if (!pattern || !*pattern)
        return "must not be empty";
    const char *host = pattern;
    if (strncmp(pattern, "*.", 2) == 0)
        host = pattern + 2;
    size_t len = strlen(host);
    const char *why;
    if (host[0] == '[' && len >= 2 && host[len - 1] == ']')
        why = ipv6_literal_problem(host + 1, len - 2);
    else if (strchr(host, ':'))
        why = ipv6_literal_problem(host, len);
    else
        why = dns_host_problem(host, len);
    return why ? "must be a host name, \"*.suffix\" or an IP address" : NULL;
}

const char *fg__ip_or_cidr_problem(const char *text)
{
    char buf[INET6_ADDRSTRLEN + 8];
    unsigned char addr[sizeof(struct in6_addr)];
    const char *slash;
    size_t len;
    int family;

    if (!text || !*text)
        return "must be an IP address or CIDR";
    len = strlen(text);
    if (len >= sizeof(buf))
        return "must be an IP address or CIDR";
    slash = strchr(text, '/');
    size_t addr_len = slash ? (size_t)(slash - text) : len;
    memcpy(buf, text, addr_len);
    buf[addr_len] = '\0';
    family = strchr(buf, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, buf, addr) != 1)
        return "must be an IP address or CIDR";
    if (slash) {
        const char *d = slash + 1;
        unsigned long bits = 0;
        size_t nd = strlen(d);
        if (nd == 0 || nd > 3)
            return "CIDR prefix length must be a number";
        for (size_t i = 0; i < nd; i++) {
            if (!isdigit((unsigned char)d[i]))
                return "CIDR prefix length must be a number";
            bits = bits * 10 + (unsigned long)(d[i] - '0');
        }
        if (bits > (family == AF_INET ? 32u : 128u))
            return "CIDR prefix length is out of range";
    }
    return NULL;
}

const char *fg__redis_url_problem(const char *url)
{
    if (!url || !*url)
        return "must be a redis://, rediss:// or unix: URL";
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f)
            return "must not contain spaces, control or non-ASCII characters";
    if (strlen(url) > FG_URL_MAX_LEN)
        return "is too long";
    if (strncasecmp(url, "redis://", 8) == 0 && url[8])
        return NULL;
    if (strncasecmp(url, "rediss://", 9) == 0 && url[9])
        return NULL;
    if (strncasecmp(url, "unix:", 5) == 0 && url[5])
        return NULL;
    return "must be a redis://, rediss:// or unix: URL";
}
