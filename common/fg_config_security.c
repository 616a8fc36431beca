/* fg_config_security.c - allow-list findings on a configuration (see fg_config.h).
 *
 * The same rules the data plane enforces (fg_cidr.h: host patterns, the default blocked
 * ranges plus security.blockedIPs), applied to what the config itself names, so an operator
 * hears about an upstream the data plane will refuse (403) when it is written, not when a
 * request fails. Address literals are checked here; names only once resolved, by the data
 * plane. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fg_cidr.h"
#include "fg_config.h"

#define SECURITY_MSG_MAX 512 /* one finding's text */

/* The blocked set of `sec`: defaults plus blockedIPs. NULL on ENOMEM. */
static fg_cidr_set_t *blocked_set(const fg_security_conf_t *sec)
{
    return fg_cidr_set_from_list(sec->blocked_ips, sec->n_blocked_ips, true);
}

static int check_upstream(const fg_security_conf_t *sec, const fg_cidr_set_t *blocked,
                          const fg_upstream_t *u, const char *path, fg_warning_fn fn, void *ctx)
{
    int found = 0;
    char field[128], msg[SECURITY_MSG_MAX];
    const char *dot = path && *path ? "." : "";
    for (size_t t = 0; t < u->n_targets; t++) {
        const char *host = u->targets[t].parsed.host;
        if (!host)
            continue;
        if (u->targets_explicit)
            snprintf(field, sizeof field, "%s%stargets[%zu].url", path ? path : "", dot, t);
        else
            snprintf(field, sizeof field, "%s%surl", path ? path : "", dot);
        if (!fg_host_allowed(sec->allowed_hosts, sec->n_allowed_hosts, host)) {
            snprintf(msg, sizeof msg,
                     "upstream \"%s\": host \"%s\" is outside security.allowedHosts: the "
                     "data plane answers 403 on routes to it", u->name ? u->name : "", host);
            fn(ctx, field, msg);
            found++;
        }
        fg_ip_t ip;
        const char *rule;
        if (fg_ip_parse(host, strlen(host), &ip) == 0 &&
            (rule = fg_cidr_set_match_connect(blocked, &ip)) != NULL) {
            bool dflt = strncmp(rule, "default:", 8) == 0;
            snprintf(msg, sizeof msg,
                     "upstream \"%s\": address %s is blocked (%s%s): the data plane answers "
                     "403 on routes to it", u->name ? u->name : "", host,
                     dflt ? "" : "security.blockedIPs: ", rule);
            fn(ctx, field, msg);
            found++;
        }
    }
    return found;
}

int fg_upstream_security_check(const fg_security_conf_t *sec, const fg_upstream_t *u,
                               const char *path, fg_warning_fn fn, void *ctx)
{
    fg_cidr_set_t *blocked = blocked_set(sec);
    if (!blocked)
        return -ENOMEM;
    int n = check_upstream(sec, blocked, u, path, fn, ctx);
    fg_cidr_set_free(blocked);
    return n;
}

int fg_config_security_check(const fg_config_t *cfg, fg_warning_fn fn, void *ctx)
{
    fg_cidr_set_t *blocked = blocked_set(&cfg->security);
    if (!blocked)
        return -ENOMEM;
    int total = 0;
    char path[48];
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        snprintf(path, sizeof path, "upstreams[%zu]", i);
        total += check_upstream(&cfg->security, blocked, &cfg->upstreams[i], path, fn, ctx);
    }
    fg_cidr_set_free(blocked);
    return total;
}
