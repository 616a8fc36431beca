/* paths.h - where an installed flexgate-ctl finds the files it ships with (the admin UI). */
#ifndef CTL_PATHS_H
#define CTL_PATHS_H

/** The default --ui-dir: the first directory that exists of
 *  1. <directory of this executable>/FG_UI_INSTALL_REL (an installed binary, wherever its
 *     prefix or DESTDIR put it: bin/../share/flexgate/ui),
 *  2. FG_UI_DIR (the source tree's ui/, for a binary run from its build tree),
 *  3. FG_UI_INSTALL_DIR (CMAKE_INSTALL_FULL_DATADIR/flexgate/ui, the configured location).
 *  NULL when none exists (the UI is then off unless --ui-dir names one). The string is
 *  static: do not free it. */
const char *paths_default_ui_dir(void);

#endif
