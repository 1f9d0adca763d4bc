-- The pseudonymisation key this warehouse's pseudonyms were made with, by fingerprint only
-- (warehouse/key_fingerprint.py): a run with another key stops instead of mixing pseudonyms.
create table audit.key_fingerprint (
    fingerprint varchar not null,   -- HMAC-SHA256 of a fixed text under the key, 16 hex digits
    recorded_at timestamp not null,
    note varchar not null
);
