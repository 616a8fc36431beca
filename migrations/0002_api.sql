-- 0002_api.sql - what the full admin API needs (issue 4): snapshot history that says what
-- changed, and settings sections that always exist.
--
-- `changes` is a JSON array computed when the version is committed, by comparing the new
-- configuration with the previous version's: [{"kind":"route","name":"users","op":"updated"},
-- ...], at most STORE_CHANGES_MAX entries (store.h); `changes_total` counts all of them, so a
-- 1,000-route import is listed without storing 1,000 entries per version. Versions committed
-- before this migration keep '[]' and 0 (unknown).
ALTER TABLE snapshots ADD COLUMN changes TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(changes));
ALTER TABLE snapshots ADD COLUMN changes_total INTEGER NOT NULL DEFAULT 0;

-- Every settings section has a row from now on, so each has a revision (an ETag) from the
-- start; '{}' means all defaults. Resetting a section writes '{}' and bumps its revision
-- instead of deleting the row, so a revision is never reused.
INSERT OR IGNORE INTO settings (key, value, revision, updated_at)
    SELECT s.key, '{}', 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM (SELECT 'proxy' AS key UNION ALL SELECT 'security' UNION ALL SELECT 'rateLimit'
          UNION ALL SELECT 'logging' UNION ALL SELECT 'metrics') AS s;
