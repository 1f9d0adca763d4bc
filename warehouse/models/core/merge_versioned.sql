-- model: core.merge_versioned
-- materialized: statement
-- reads: temp.staged, core.{table}
-- Merge one batch's staged rows into a versioned core table (templated by warehouse/load.py with
-- the table, its business key from fields.yaml and, for sources with 更新时间, `not_older`).
-- Unchanged rows do nothing, so replaying a batch changes nothing; a changed row closes the
-- current version and opens a new one, unless it is older than the current version (then the
-- current one stays, and the older row is not inserted either).
update core.{table} as t set valid_to = $loaded_at
from staged as s
where {key_match} and t.valid_to is null and t.row_hash <> s.row_hash {not_older};

insert into core.{table} by name
select s.*, $batch_id as batch_id, $loaded_at as valid_from, null::timestamp as valid_to
from staged as s
where not exists (select 1 from core.{table} as t where {key_match} and t.valid_to is null);
