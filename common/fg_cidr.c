/* fg_cidr.c - address parsing and CIDR sets (see fg_cidr.h).
 *
 * inet_pton does the parsing, so what we accept is exactly what the resolver and the kernel
 * mean by an address: no "127.1" or octal surprises (inet_pton refuses them). A set keeps its
 * ranges in one array sorted by (family, prefix length descending, network bytes): each run of
 * one family and prefix length is a group, searched with a binary search on the address
 * masked to that length. Longest prefixes come first, so the label returned is the most
 * specific rule. */
#include "fg_cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct entry {
    fg_cidr_t c;
    const char *label;
    char *owned; /* the label, when the set copied it */
} entry_t;

typedef struct group {
    uint8_t family, prefix;
    size_t start, count;
} group_t;

struct fg_cidr_set {
    entry_t *e;
    size_t n, cap;
    group_t *g; /* rebuilt by fg_cidr_set_build */
    size_t ng;
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t nat64_prefix[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

static size_t ip_len(uint8_t family)
{
    return family == 4 ? 4 : 16;
}

static void ip_set_v6(fg_ip_t *ip, const uint8_t b[16])
{
    memset(ip, 0, sizeof *ip);
    if (memcmp(b, v4_mapped_prefix, 12) == 0) {
        ip->family = 4;
        memcpy(ip->bytes, b + 12, 4);
    } else {
        ip->family = 6;
        memcpy(ip->bytes, b, 16);
    }
}

int fg_ip_parse(const char *text, size_t len, fg_ip_t *out)
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (!text || len == 0)
        return -EINVAL;
    if (text[0] == '[') {
        if (len < 3 || text[len - 1] != ']')
            return -EINVAL;
        text++;
        len -= 2;
    }
    if (len >= sizeof buf)
        return -EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    uint8_t b[16];
    if (memchr(buf, ':', len)) {
        if (inet_pton(AF_INET6, buf, b) != 1)
            return -EINVAL;
        ip_set_v6(out, b);
        return 0;
    }
    if (inet_pton(AF_INET, buf, b) != 1)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->family = 4;
    memcpy(out->bytes, b, 4);
    return 0;
}

/* Clear the bits past `prefix`. */
static void ip_mask(fg_ip_t *ip, unsigned prefix)
{
    size_t n = ip_len(ip->family);
    for (size_t i = 0; i < n; i++) {
        unsigned bit = (unsigned)i * 8;
        if (bit >= prefix)
            ip->bytes[i] = 0;
        else if (prefix - bit < 8)
            ip->bytes[i] &= (uint8_t)(0xffu << (8 - (prefix - bit)));
    }
}

int fg_cidr_parse(const char *text, fg_cidr_t *out)
{
    if (!text)
        return -EINVAL;
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    /* Parse as written first: a mapped IPv6 range keeps its IPv6 prefix length until we know
     * whether it fits inside ::ffff:0:0/96. */
    char buf[INET6_ADDRSTRLEN + 1];
    const char *a = text;
    if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
        a++;
        alen -= 2;
    }
    if (alen == 0 || alen >= sizeof buf)
        return -EINVAL;
    memcpy(buf, a, alen);
    buf[alen] = '\0';
    bool v6 = memchr(buf, ':', alen) != NULL;
    uint8_t b[16] = {0};
    if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, b) != 1)
        return -EINVAL;
    unsigned max = v6 ? 128 : 32, prefix = max;
    if (slash) {
        const char *d = slash + 1;
        size_t nd = strlen(d);
        if (nd == 0 || nd > 3)
            return -EINVAL;
        prefix = 0;
        for (size_t i = 0; i < nd; i++) {
            if (d[i] < '0' || d[i] > '9')
                return -EINVAL;
            prefix = prefix * 10 + (unsigned)(d[i] - '0');
        }
        if (prefix > max)
            return -EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (v6 && prefix >= 96 && memcmp(b, v4_mapped_prefix, 12) == 0) {
        out->net.family = 4;
        memcpy(out->net.bytes, b + 12, 4);
        prefix -= 96;
    } else {
        out->net.family = v6 ? 6 : 4;
        memcpy(out->net.bytes, b, v6 ? 16 : 4);
    }
    out->prefix = (uint8_t)prefix;
    ip_mask(&out->net, prefix);
    return 0;
}

int fg_ip_from_sockaddr(const struct sockaddr *sa, fg_ip_t *out)
{
    if (!sa)
        return -EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memset(out, 0, sizeof *out);
        out->family = 4;
        memcpy(out->bytes, &s4->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        ip_set_v6(out, s6->sin6_addr.s6_addr);
        return 0;
    }
    return -EINVAL;
}

bool fg_ip_embedded_v4(const fg_ip_t *ip, fg_ip_t *v4)
{
    static const uint8_t zero[12];
    if (ip->family != 6)
        return false;
    bool nat64 = memcmp(ip->bytes, nat64_prefix, 12) == 0;
    bool compat = memcmp(ip->bytes, zero, 12) == 0 &&
                  (ip->bytes[12] | ip->bytes[13] | ip->bytes[14] | (ip->bytes[15] & 0xfe)) != 0;
    if (!nat64 && !compat)
        return false;
    memset(v4, 0, sizeof *v4);
    v4->family = 4;
    memcpy(v4->bytes, ip->bytes + 12, 4);
    return true;
}

void fg_ip_format(const fg_ip_t *ip, char *out, size_t cap)
{
    if (!inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->bytes, out, (socklen_t)cap) && cap)
        snprintf(out, cap, "?");
}

/* ---- sets ------------------------------------------------------------------------------ */

fg_cidr_set_t *fg_cidr_set_new(void)
{
    return calloc(1, sizeof(fg_cidr_set_t));
}

int fg_cidr_set_add_cidr(fg_cidr_set_t *s, const fg_cidr_t *c, const char *label)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        entry_t *ne = realloc(s->e, cap * sizeof *ne);
        if (!ne)
            return -ENOMEM;
        s->e = ne;
        s->cap = cap;
    }
    s->e[s->n++] = (entry_t){.c = *c, .label = label};
    return 0;
}

int fg_cidr_set_add(fg_cidr_set_t *s, const char *text, const char *label)
{
    fg_cidr_t c;
    if (fg_cidr_parse(text, &c) < 0)
        return -EINVAL;
    char *owned = NULL;
    if (!label) {
        owned = strdup(text);
        if (!owned)
            return -ENOMEM;
        label = owned;
    }
    int rc = fg_cidr_set_add_cidr(s, &c, label);
    if (rc < 0) {
        free(owned);
        return rc;
    }
    s->e[s->n - 1].owned = owned;
    /* An IPv6 range wide enough to hold all of ::ffff:0:0/96 holds every IPv4 address in its
     * mapped form: those are matched as IPv4, so say so with a second entry. */
    if (c.net.family == 6 && c.prefix <= 96) {
        fg_ip_t mapped = {.family = 6};
        memcpy(mapped.bytes, v4_mapped_prefix, 12);
        ip_mask(&mapped, c.prefix);
        if (memcmp(mapped.bytes, c.net.bytes, 16) == 0) {
            fg_cidr_t all4 = {.net = {.family = 4}, .prefix = 0};
            rc = fg_cidr_set_add_cidr(s, &all4, label);
            if (rc < 0)
                return rc; /* the first entry stays; the set is freed by the caller */
        }
    }
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const fg_cidr_t *x = &((const entry_t *)a)->c, *y = &((const entry_t *)b)->c;
    if (x->net.family != y->net.family)
        return x->net.family < y->net.family ? -1 : 1;
    if (x->prefix != y->prefix)
        return x->prefix > y->prefix ? -1 : 1; /* longest first */
    return memcmp(x->net.bytes, y->net.bytes, ip_len(x->net.family));
}

int fg_cidr_set_build(fg_cidr_set_t *s)
{
    free(s->g);
    s->g = NULL;
    s->ng = 0;
    if (s->n == 0)
        return 0;
    qsort(s->e, s->n, sizeof *s->e, entry_cmp);
    size_t ng = 1;
    for (size_t i = 1; i < s->n; i++)
        if (s->e[i].c.net.family != s->e[i - 1].c.net.family ||
            s->e[i].c.prefix != s->e[i - 1].c.prefix)
            ng++;
    s->g = calloc(ng, sizeof *s->g);
    if (!s->g)
        return -ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        group_t *g = &s->g[s->ng ? s->ng - 1 : 0];
        if (s->ng == 0 || g->family != s->e[i].c.net.family || g->prefix != s->e[i].c.prefix) {
            g = &s->g[s->ng++];
            g->family = s->e[i].c.net.family;
            g->prefix = s->e[i].c.prefix;
            g->start = i;
        }
        g->count++;
    }
    return 0;
}

static const char *match_family(const fg_cidr_set_t *s, const fg_ip_t *ip)
{
    size_t n = ip_len(ip->family);
    for (size_t gi = 0; gi < s->ng; gi++) {
        const group_t *g = &s->g[gi];
        if (g->family != ip->family)
            continue;
        fg_ip_t m = *ip;
        ip_mask(&m, g->prefix);
        size_t lo = g->start, hi = g->start + g->count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = memcmp(s->e[mid].c.net.bytes, m.bytes, n);
            if (c == 0)
                return s->e[mid].label;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    return NULL;
}

const char *fg_cidr_set_match(const fg_cidr_set_t *s, const fg_ip_t *ip)
{
    if (!s || !ip)
        return NULL;
    const char *hit = match_family(s, ip);
    fg_ip_t v4;
    if (!hit && fg_ip_embedded_v4(ip, &v4))
        hit = match_family(s, &v4);
    return hit;
}

const char *fg_cidr_set_match_sockaddr(const fg_cidr_set_t *s, const struct sockaddr *sa)
{
    fg_ip_t ip;
    if (fg_ip_from_sockaddr(sa, &ip) < 0)
        return NULL;
    return fg_cidr_set_match(s, &ip);
}

size_t fg_cidr_set_count(const fg_cidr_set_t *s)
{
    return s ? s->n : 0;
}

void fg_cidr_set_free(fg_cidr_set_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->e[i].owned);
    free(s->e);
    free(s->g);
    free(s);
}

/* ---- allow-list rules ------------------------------------------------------------------ */

static bool ip_reaches_this_host(const fg_ip_t *ip)
{
    static const uint8_t zero[16];
    if (ip->family == 4)
        return ip->bytes[0] == 127 || ip->bytes[0] == 0;
    return memcmp(ip->bytes, zero, 15) == 0 && ip->bytes[15] <= 1; /* :: and ::1 */
}

const char *fg_cidr_set_match_connect(const fg_cidr_set_t *s, const fg_ip_t *ip)
{
    const char *hit = fg_cidr_set_match(s, ip);
    if (hit || !s || !ip || !ip_reaches_this_host(ip))
        return hit;
    static const fg_ip_t lo4 = {.family = 4, .bytes = {127, 0, 0, 1}};
    static const fg_ip_t lo6 = {.family = 6, .bytes = {[15] = 1}};
    hit = fg_cidr_set_match(s, &lo4);
    return hit ? hit : fg_cidr_set_match(s, &lo6);
}

/* Cloud metadata services and the link-local ranges they live in. A gateway's upstreams never
 * need them, and a request that reaches one can read the host's credentials. */
static const struct {
    const char *cidr;
    const char *label;
} default_blocked[] = {
    {"169.254.0.0/16", "default: link-local 169.254.0.0/16 (AWS, GCP, Azure, OCI metadata)"},
    {"fe80::/10", "default: link-local fe80::/10"},
    {"fd00:ec2::254", "default: AWS metadata fd00:ec2::254"},
    {"100.100.100.200", "default: Alibaba Cloud metadata 100.100.100.200"},
    {"168.63.129.16", "default: Azure platform 168.63.129.16"},
    {"192.0.0.192", "default: Oracle Cloud metadata 192.0.0.192"},
};

int fg_cidr_set_add_defaults(fg_cidr_set_t *s)
{
    for (size_t i = 0; i < sizeof default_blocked / sizeof default_blocked[0]; i++) {
        int rc = fg_cidr_set_add(s, default_blocked[i].cidr, default_blocked[i].label);
        if (rc < 0)
            return rc;
    }
    return 0;
}

fg_cidr_set_t *fg_cidr_set_from_list(const char *const *list, size_t n, bool defaults)
{
    fg_cidr_set_t *s = fg_cidr_set_new();
    if (!s || (defaults && fg_cidr_set_add_defaults(s) < 0))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (fg_cidr_set_add(s, list[i], list[i]) == -ENOMEM)
            goto fail;
    if (fg_cidr_set_build(s) < 0)
        goto fail;
    return s;
fail:
    fg_cidr_set_free(s);
    return NULL;
}

bool fg_host_match(const char *pattern, const char *host)
{
    if (!pattern || !host)
        return false;
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t pl = strlen(pattern + 1), hl = strlen(host); /* ".suffix" */
        return hl > pl && strcasecmp(host + hl - pl, pattern + 1) == 0;
    }
    if (strcasecmp(pattern, host) == 0)
        return true;
    fg_ip_t a, b;
    return fg_ip_parse(pattern, strlen(pattern), &a) == 0 &&
           fg_ip_parse(host, strlen(host), &b) == 0 && a.family == b.family &&
           memcmp(a.bytes, b.bytes, sizeof a.bytes) == 0;
}

bool fg_host_allowed(const char *const *patterns, size_t n, const char *host)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (fg_host_match(patterns[i], host))
            return true;
    return false;
}
