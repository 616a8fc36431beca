/* api_ui.c - the static admin UI under /ui/, served from --ui-dir.
 *
 * Files only, no listing, no token (the pages ask for it and send it to /api/ themselves).
 * A request path is confined to the UI directory by refusing "." and ".." segments and
 * dot-files, and by opening it one segment at a time with O_NOFOLLOW (openat from the UI
 * directory), so neither a crafted path nor a symlink planted in the directory -- to a file
 * or to a directory on the way -- can reach other files. libmicrohttpd hands us the path
 * percent-decoded, so "%2e%2e" and "..%2f" arrive as ".." segments and are refused the same
 * way. Only the extensions in ui_types are served.
 *
 * Caching: the console's ES modules import each other by plain names (there is no build
 * step to hash them), so a browser must never run a cached module beside a newer page.
 * Every page, script and stylesheet is therefore sent with `Cache-Control: no-cache` and a
 * strong validator (ETag from size, mtime and inode, plus Last-Modified): a reload costs
 * one 304 per file and an upgrade is seen at once. Only images and fonts, which nothing
 * imports, may be kept for UI_ASSET_MAX_AGE_S without asking. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

#define UI_INDEX "index.html"
#define UI_ASSET_MAX_AGE_S 86400 /* images and fonts: a day without revalidation */
#define UI_ETAG_MAX 64           /* "<size>-<mtime ns>-<inode>" in hex, quoted */
#define UI_DATE_MAX 40           /* an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") */
/* No inline script or style anywhere in ui/: everything comes from this origin, the API
 * is the only thing fetched, and no other site may frame the console (clickjacking). */
#define UI_CSP                                                                            \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "          \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "          \
    "form-action 'self'; frame-ancestors 'none'"

static const struct {
    const char *ext, *type;
    bool immutable_asset; /* nothing imports it: may be cached for UI_ASSET_MAX_AGE_S */
} ui_types[] = {
    {".html", "text/html; charset=utf-8", false},
    {".css", "text/css; charset=utf-8", false},
    {".js", "text/javascript; charset=utf-8", false},
    {".mjs", "text/javascript; charset=utf-8", false},
    {".json", "application/json", false},
    {".txt", "text/plain; charset=utf-8", false},
    {".svg", "image/svg+xml", true},
    {".png", "image/png", true},
    {".ico", "image/x-icon", true},
    {".woff2", "font/woff2", true},
};

/* Index into ui_types, or -1 for an extension we do not serve. */
static int ui_type_of(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash))
        return -1;
    for (size_t i = 0; i < sizeof ui_types / sizeof ui_types[0]; i++)
        if (strcmp(dot, ui_types[i].ext) == 0)
            return (int)i;
    return -1;
}

/* Every segment must be a plain name: no "", ".", "..", dot-files or backslashes. */
static bool ui_path_safe(const char *rel)
{
    size_t len = strlen(rel);
    if (len == 0 || rel[len - 1] == '/' || strchr(rel, '\\'))
        return false;
    for (const char *seg = rel; *seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || seg[0] == '.')
            return false;
        seg += n + (end ? 1 : 0);
    }
    return true;
}

static enum MHD_Result ui_redirect(api_req_t *req)
{
    snprintf(req->reply_location, sizeof req->reply_location, "/ui/");
    return api_reply_empty(req, MHD_HTTP_FOUND);
}

/* Open `rel` (already ui_path_safe) under `dir` without following any symlink on the way.
 * Returns a descriptor the caller closes, or -1. */
static int ui_open(const char *dir, const char *rel)
{
    char seg[NAME_MAX + 1];
    int at = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (at >= 0) {
        const char *slash = strchr(rel, '/');
        size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
        if (n == 0 || n > NAME_MAX) {
            close(at);
            return -1;
        }
        memcpy(seg, rel, n);
        seg[n] = '\0';
        int fd = openat(at, seg, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (slash ? O_DIRECTORY : 0));
        close(at);
        if (!slash)
            return fd;
        at = fd;
        rel = slash + 1;
    }
    return -1;
}

/* True when If-None-Match lists `etag` (weak comparison, RFC 9110 13.1.2) or is "*". */
static bool ui_etag_matches(const char *header, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = header; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
                                         p[n] == '\t'))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/* Whether the client's copy is current: If-None-Match decides when sent; otherwise an
 * If-Modified-Since equal to our Last-Modified (nginx's "exact" rule: a date we did not
 * send proves nothing). */
static bool ui_not_modified(api_req_t *req, const char *etag, const char *last_modified)
{
    const char *inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm)
        return ui_etag_matches(inm, etag);
    const char *ims = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
    return ims && strcmp(ims, last_modified) == 0;
}

/* Queue `resp` (consumed) with the UI's own headers. Not api_reply_response: that one
 * forbids caching (right for API answers, wrong for static files). */
static enum MHD_Result ui_queue(api_req_t *req, unsigned status, struct MHD_Response *resp,
                                int type, const char *etag, const char *last_modified)
{
    char cache[64];
    if (!resp)
        return MHD_NO;
    if (type >= 0 && ui_types[type].immutable_asset)
        snprintf(cache, sizeof cache, "public, max-age=%d", UI_ASSET_MAX_AGE_S);
    else
        snprintf(cache, sizeof cache, "no-cache");
    if (status == MHD_HTTP_OK)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                type >= 0 ? ui_types[type].type : "application/octet-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, last_modified);
    MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    req->replied = true;
    req->status = (int)status;
    return rc;
}

enum MHD_Result api_ui(api_req_t *req)
{
    char rel[PATH_MAX];
    char etag[UI_ETAG_MAX], last_modified[UI_DATE_MAX];
    struct stat sb;
    struct tm tm;
    if (strcmp(req->url, "/") == 0 || strcmp(req->url, "/ui") == 0)
        return ui_redirect(req);
    if (!req->ui_dir || !*req->ui_dir)
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                               "the admin UI is not served (no --ui-dir)");
    /* "/ui/" and "/ui/dir/" mean the index file of that directory */
    const char *want = req->url + strlen("/ui/");
    size_t n = strlen(want);
    bool dir = n == 0 || want[n - 1] == '/';
    if (snprintf(rel, sizeof rel, "%s%s", want, dir ? UI_INDEX : "") >= (int)sizeof rel ||
        !ui_path_safe(rel))
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such file");
    int type = ui_type_of(rel);
    int fd = type < 0 ? -1 : ui_open(req->ui_dir, rel);
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such file");
    }
    snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"",
             (uint64_t)sb.st_size,
             (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec,
             (uint64_t)sb.st_ino);
    if (!gmtime_r(&sb.st_mtim.tv_sec, &tm) ||
        !strftime(last_modified, sizeof last_modified, "%a, %d %b %Y %H:%M:%S GMT", &tm))
        snprintf(last_modified, sizeof last_modified, "Thu, 01 Jan 1970 00:00:00 GMT");
    if (ui_not_modified(req, etag, last_modified)) {
        close(fd);
        return ui_queue(req, MHD_HTTP_NOT_MODIFIED,
                        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), type,
                        etag, last_modified);
    }
    /* MHD owns fd from here (closed when the response is destroyed), unless creation fails */
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t)sb.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    return ui_queue(req, MHD_HTTP_OK, resp, type, etag, last_modified);
}
