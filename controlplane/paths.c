/* paths.c - the installed layout as flexgate-ctl sees it at run time (see paths.h).
 *
 * The executable's own location comes first because it is right for every install: a
 * package under /usr, `cmake --install --prefix /opt/flexgate`, and a DESTDIR staging tree
 * alike, none of which the compiled-in absolute path can know about. */
#include "paths.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FG_UI_DIR
#define FG_UI_DIR ""
#endif
#ifndef FG_UI_INSTALL_DIR
#define FG_UI_INSTALL_DIR ""
#endif
#ifndef FG_UI_INSTALL_REL
#define FG_UI_INSTALL_REL "../share/flexgate/ui"
#endif

static bool is_dir(const char *path)
{
    struct stat sb;
    return path[0] && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

const char *paths_default_ui_dir(void)
{
    static char beside_exe[PATH_MAX];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(beside_exe, sizeof beside_exe, "%s/%s", exe, FG_UI_INSTALL_REL) <
                    (int)sizeof beside_exe && is_dir(beside_exe))
                return beside_exe;
        }
    }
    if (is_dir(FG_UI_DIR))
        return FG_UI_DIR;
    if (is_dir(FG_UI_INSTALL_DIR))
        return FG_UI_INSTALL_DIR;
    return NULL;
}
