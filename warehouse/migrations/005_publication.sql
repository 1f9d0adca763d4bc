-- Each publish of the analyst database, recorded after the swap: a run that finds batches
-- loaded after the last publication publishes again (e.g. after a crash during publish).
create table audit.publication (
    published_at timestamp not null,
    path varchar not null
);
