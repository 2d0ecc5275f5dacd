-- A call store at schema version 2, as vobiz-stream wrote it before version 3 existed: an ended
-- call (an event, its worker) and an active one; that code had added the search indexes on open.
-- Dumped with sqlite3's iterdump from the file that code made (tests/store/test_versions.py).
BEGIN TRANSACTION;
CREATE TABLE call_events (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls (call_id),
        stream_row INTEGER REFERENCES streams (id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
INSERT INTO "call_events" VALUES(1,'old-call',1,'2026-03-04T05:06:08.000Z','dtmf','{"digit":"7"}');
CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        from_number TEXT,
        to_number TEXT,
        direction TEXT,
        account_id TEXT,
        status TEXT NOT NULL
    );
INSERT INTO "calls" VALUES('old-call','2026-03-04T05:06:07.000Z','2026-03-04T05:06:12.000Z','+14155551111','+918045678901',NULL,NULL,'ended');
INSERT INTO "calls" VALUES('open-call','2026-03-05T05:06:07.000Z','2026-03-05T05:06:07.000Z','+15550002222','+918045678901',NULL,NULL,'active');
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO "schema_version" VALUES(2);
CREATE TABLE status_callbacks (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        event TEXT NOT NULL,
        call_uuid TEXT REFERENCES calls (call_id),
        stream_id TEXT,
        signature TEXT NOT NULL,
        fields TEXT NOT NULL
    );
CREATE TABLE streams (
        id INTEGER PRIMARY KEY,
        stream_id TEXT,
        call_id TEXT NOT NULL REFERENCES calls (call_id),
        started_at TEXT NOT NULL,
        ended_at TEXT,
        end_reason TEXT,
        tracks TEXT NOT NULL,
        encoding TEXT NOT NULL,
        sample_rate INTEGER NOT NULL,
        byte_order TEXT,
        recording_path TEXT,
        frames_received INTEGER NOT NULL DEFAULT 0,
        frames_malformed INTEGER NOT NULL DEFAULT 0,
        frames_sent INTEGER NOT NULL DEFAULT 0,
        error TEXT
    , worker INTEGER REFERENCES workers (id));
INSERT INTO "streams" VALUES(1,'a','old-call','2026-03-04T05:06:07.000Z','2026-03-04T05:06:12.000Z','hangup','["inbound"]','audio/x-l16',8000,NULL,NULL,250,0,10,NULL,1);
INSERT INTO "streams" VALUES(2,'b','open-call','2026-03-05T05:06:07.000Z',NULL,NULL,'["inbound"]','audio/x-l16',8000,NULL,NULL,0,0,0,NULL,NULL);
CREATE TABLE workers (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL
    );
INSERT INTO "workers" VALUES(1,'old-host',4242,'2026-03-04T05:06:07.000Z');
CREATE INDEX calls_by_first_seen ON calls (first_seen);
CREATE INDEX streams_by_call ON streams (call_id);
CREATE INDEX open_streams_by_call ON streams (call_id) WHERE ended_at IS NULL;
CREATE INDEX call_events_by_call ON call_events (call_id, at, id);
CREATE INDEX status_callbacks_by_call ON status_callbacks (call_uuid, received_at, id);
CREATE INDEX calls_by_status ON calls (status, first_seen);
CREATE INDEX calls_by_numbers ON calls (first_seen, from_number, to_number);
COMMIT;
