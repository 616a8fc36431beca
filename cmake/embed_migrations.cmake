# Writes OUT: a C file holding every migration in FILES (sorted), as
#   const ctl_migration_t ctl_migrations[]; const size_t ctl_migrations_count;
# Bytes are emitted as hex so any SQL text survives unescaped.
set(body "/* Generated from the SQL files in migrations/ by cmake/embed_migrations.cmake. Do not edit. */\n")
string(APPEND body "#include <stddef.h>\n#include \"migrations.h\"\n\n")
set(table "")
set(i 0)
string(REPLACE "|" ";" FILES "${FILES}")
foreach(f ${FILES})
  get_filename_component(name ${f} NAME)
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(APPEND body "static const char sql_${i}[] = {${hex}0x00};\n")
  string(APPEND table "    {\"${name}\", sql_${i}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "\nconst ctl_migration_t ctl_migrations[] = {\n${table}};\n")
string(APPEND body "const size_t ctl_migrations_count = ${i};\n")
file(WRITE ${OUT} "${body}")
