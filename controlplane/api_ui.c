/* api_ui.c - the static admin UI under /ui/, served from --ui-dir.
 *
 * Files only, no listing, no token (the pages ask for it and send it to /api/ themselves).
 * A request path is confined to the UI directory by refusing "." and ".." segments and
 * dot-files and by opening with O_NOFOLLOW, so neither a crafted path nor a symlink planted
 * in the directory can reach other files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"

#define UI_INDEX "index.html"
#define UI_CSP "default-src 'self'; frame-ancestors 'none'; base-uri 'none'"

static const struct {
    const char *ext, *type;
} ui_types[] = {
    {".html", "text/html; charset=utf-8"},  {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},          {".svg", "image/svg+xml"},
    {".png", "image/png"},                  {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},  {".woff2", "font/woff2"},
};

static const char *ui_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof ui_types / sizeof ui_types[0]; i++)
        if (strcmp(dot, ui_types[i].ext) == 0)
            return ui_types[i].type;
    return "application/octet-stream";
}

/* Every segment must be a plain name: no "", ".", "..", dot-files or backslashes. */
static bool ui_path_safe(const char *rel)
{
    if (strchr(rel, '\\'))
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

enum MHD_Result api_ui(api_req_t *req)
{
    char path[PATH_MAX];
    struct stat sb;
    if (strcmp(req->url, "/") == 0 || strcmp(req->url, "/ui") == 0)
        return ui_redirect(req);
    if (!req->ui_dir || !*req->ui_dir)
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                               "the admin UI is not served (no --ui-dir)");
    char rel[PATH_MAX];
    if (snprintf(rel, sizeof rel, "%s", req->url + strlen("/ui/")) >= (int)sizeof rel)
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such file");
    size_t n = strlen(rel);
    bool dir = n == 0 || rel[n - 1] == '/';
    if (dir && n)
        rel[n - 1] = '\0';
    if ((*rel && !ui_path_safe(rel)) ||
        snprintf(path, sizeof path, "%s/%s%s%s", req->ui_dir, rel, *rel && dir ? "/" : "",
                 dir ? UI_INDEX : "") >= (int)sizeof path)
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such file");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such file");
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t)sb.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    return api_reply_response(req, MHD_HTTP_OK, resp, ui_content_type(path));
}
