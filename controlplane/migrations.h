/* migrations.h - the SQL migrations compiled into flexgate-ctl.
 *
 * The table is generated at build time from migrations/NNNN_name.sql (sorted by name) by
 * cmake/embed_migrations.cmake; store.c applies the ones not yet recorded in
 * schema_migrations, in order, each in its own transaction. */
#ifndef CTL_MIGRATIONS_H
#define CTL_MIGRATIONS_H

#include <stddef.h>

typedef struct ctl_migration {
    const char *name; /* file name, e.g. "0001_init.sql" */
    const char *sql;  /* its full text */
} ctl_migration_t;

extern const ctl_migration_t ctl_migrations[];
extern const size_t ctl_migrations_count;

#endif
