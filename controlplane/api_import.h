/* api_import.h - the admin API's configuration import and export endpoints.
 *
 *   POST /api/v1/import[?mode=replace|merge][&dry_run=true]
 *        body: a YAML configuration (application/yaml, text/yaml, application/x-yaml, or
 *        no Content-Type) or JSON (application/json); up to IMPORT_MAX_BODY bytes.
 *        200 {"mode","dry_run","from_version","version","checksum","changes","diff"};
 *        400 invalid_yaml / invalid_json / bad_request, 409 already_exists (a name given
 *        twice), 413 payload_too_large, 415 unsupported_media_type, 422 validation_failed.
 *        Errors about a place in a YAML body carry "line" and "column" (1-based).
 *   GET  /api/v1/export  -> 200 application/yaml, the current configuration; importing it
 *        gives back the same configuration (same checksum, X-Config-Checksum header). */
#ifndef CTL_API_IMPORT_H
#define CTL_API_IMPORT_H

#include "api.h"
#include "yamlio.h"

#define IMPORT_MAX_BODY YAMLIO_MAX_INPUT_BYTES /* import bodies above this: 413 */

enum MHD_Result api_import(api_req_t *req); /* POST /api/v1/import */
enum MHD_Result api_export(api_req_t *req); /* GET /api/v1/export */

#endif
