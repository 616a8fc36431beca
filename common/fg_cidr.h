/* fg_cidr.h - IP addresses, CIDR ranges, and sets of ranges matched against socket addresses.
 *
 * One address type for both families: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the
 * IPv4 address it carries, wherever it comes from (config text or a resolved sockaddr), so a
 * rule written for 169.254.169.254 also stops [::ffff:169.254.169.254]. Addresses that embed
 * an IPv4 address by other conventions (NAT64 64:ff9b::/96, IPv4-compatible ::a.b.c.d) are
 * matched both as themselves and as the IPv4 address inside: a translator on the path would
 * deliver them there.
 *
 * A set is built once (config time) and then only read: entries grouped by family and prefix
 * length, each group sorted, so a match costs one binary search per distinct prefix length in
 * the set (a handful), never a scan over the rules. Matching allocates nothing. */
#ifndef FG_CIDR_H
#define FG_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define FG_CIDR_TEXT_MAX 64 /* longest accepted text: IPv6 with a /128, brackets, some slack */

/** An address: `family` is 4 or 6; IPv4 uses bytes[0..3] (network order). */
typedef struct fg_ip {
    uint8_t family;
    uint8_t bytes[16];
} fg_ip_t;

/** A range: the address with its host bits cleared, and the prefix length (0..32 / 0..128). */
typedef struct fg_cidr {
    fg_ip_t net;
    uint8_t prefix;
} fg_cidr_t;

typedef struct fg_cidr_set fg_cidr_set_t;

/** Parse an IPv4 or IPv6 address of `len` bytes ("10.0.0.1", "fe80::1", "[::1]"); IPv4-mapped
 *  IPv6 becomes IPv4. 0 or -EINVAL. */
int fg_ip_parse(const char *text, size_t len, fg_ip_t *out);

/** Parse "addr" or "addr/prefix" (NUL-terminated). Host bits are cleared; a mapped IPv6
 *  range inside ::ffff:0:0/96 becomes the IPv4 range it covers. 0 or -EINVAL. */
int fg_cidr_parse(const char *text, fg_cidr_t *out);

/** The address of an AF_INET / AF_INET6 sockaddr (mapped IPv6 becomes IPv4). 0 or -EINVAL
 *  for any other family. */
int fg_ip_from_sockaddr(const struct sockaddr *sa, fg_ip_t *out);

/** The IPv4 address embedded in an IPv6 one by NAT64 (64:ff9b::/96) or the deprecated
 *  IPv4-compatible form (::a.b.c.d, but not :: or ::1). False for anything else. */
bool fg_ip_embedded_v4(const fg_ip_t *ip, fg_ip_t *v4);

/** Address as text ("10.0.0.1", "fe80::1") into `out` (at least 46 bytes). */
void fg_ip_format(const fg_ip_t *ip, char *out, size_t cap);

/** A new empty set (caller frees with fg_cidr_set_free). NULL on ENOMEM. */
fg_cidr_set_t *fg_cidr_set_new(void);

/** Add a range given as text; `label` (borrowed: must outlive the set) is what a match
 *  returns, NULL meaning the text itself (then copied). 0, -EINVAL or -ENOMEM. Call
 *  fg_cidr_set_build() after the last add and before matching. */
int fg_cidr_set_add(fg_cidr_set_t *s, const char *text, const char *label);

/** Add a parsed range. 0 or -ENOMEM. */
int fg_cidr_set_add_cidr(fg_cidr_set_t *s, const fg_cidr_t *c, const char *label);

/** Sort and index the set; required after adding and before matching. 0 or -ENOMEM. */
int fg_cidr_set_build(fg_cidr_set_t *s);

/** The label of the most specific range containing `ip` (for an address embedding IPv4, its
 *  IPv4 form is tried too), or NULL. A NULL set matches nothing. */
const char *fg_cidr_set_match(const fg_cidr_set_t *s, const fg_ip_t *ip);

/** fg_cidr_set_match on a sockaddr; NULL for families other than IPv4/IPv6. */
const char *fg_cidr_set_match_sockaddr(const fg_cidr_set_t *s, const struct sockaddr *sa);

/** Ranges in the set. */
size_t fg_cidr_set_count(const fg_cidr_set_t *s);

/** Release the set. NULL is accepted. */
void fg_cidr_set_free(fg_cidr_set_t *s);

/* ---- the allow-list rules both planes apply (issue 5) ---------------------------------- */

/** The label of the rule in `s` that stops a connection to `ip`: fg_cidr_set_match, plus the
 *  addresses that all reach this host (0.0.0.0/8, ::, 127.0.0.0/8, ::1) are each also matched
 *  as 127.0.0.1 and ::1, so blocking "127.0.0.0/8" also stops "localhost"'s ::1 and 0.0.0.0. */
const char *fg_cidr_set_match_connect(const fg_cidr_set_t *s, const fg_ip_t *ip);

/** Add the ranges blocked even with no `security` section: cloud metadata addresses and the
 *  link-local ranges (labels start with "default:"). 0 or -ENOMEM. */
int fg_cidr_set_add_defaults(fg_cidr_set_t *s);

/** A built set of `list` (config entries, each its own label, borrowed: they must outlive
 *  the set), plus the default ranges when `defaults`. Entries that do not parse are skipped
 *  (the config decoder has refused them already). NULL on ENOMEM. */
fg_cidr_set_t *fg_cidr_set_from_list(const char *const *list, size_t n, bool defaults);

/** One allowedHosts pattern against an upstream host (lowercase name, or an address literal
 *  without brackets): an exact name (case-insensitive), "*.suffix" (a name ending in
 *  ".suffix", the suffix itself excluded), or an address equal by value ("::1" = "[::1]"). */
bool fg_host_match(const char *pattern, const char *host);

/** True when `host` matches one of `patterns`, or there are none (no allow-list). */
bool fg_host_allowed(const char *const *patterns, size_t n, const char *host);

#endif
