-- Incremental pulls: per HTTP source, the newest 更新时间 the warehouse has loaded and the ids
-- loaded with exactly that time. Written only inside the transaction that loads the batch
-- (warehouse/load.py), so a run that dies after landing pulls the same records again next time.
create table audit.watermark (
    source varchar primary key,
    modified_at varchar not null,      -- 'YYYY-MM-DD HH:MM:SS' as the source exports 更新时间
    ids varchar[] not null,            -- record ids loaded with exactly that 更新时间
    batch_id varchar not null,         -- the batch whose load advanced it
    updated_at timestamp not null
);
