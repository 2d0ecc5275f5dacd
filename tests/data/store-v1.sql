-- A call store at schema version 1, as vobiz-stream wrote it before version 2 existed:
-- a call with a reconnect (one stream closed, one left open), two events, a status callback.
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
INSERT INTO "call_events" VALUES(1,'old-call',1,'2025-03-04T05:06:07.000Z','start','{"n":1}');
INSERT INTO "call_events" VALUES(2,'old-call',1,'2025-03-04T05:06:08.000Z','dtmf','{"digit":"7"}');
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
INSERT INTO "calls" VALUES('old-call','2025-03-04T05:06:07.000Z','2025-03-04T05:06:10.000Z','+14155551111',NULL,NULL,NULL,'active');
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO "schema_version" VALUES(1);
CREATE TABLE status_callbacks (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        event TEXT NOT NULL,
        call_uuid TEXT REFERENCES calls (call_id),
        stream_id TEXT,
        signature TEXT NOT NULL,
        fields TEXT NOT NULL
    );
INSERT INTO "status_callbacks" VALUES(1,'2025-03-04T05:06:10.000Z','StartStream','old-call','b','valid','{"Event":"StartStream","CallUUID":"old-call","StreamID":"b"}');
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
    );
INSERT INTO "streams" VALUES(1,'a','old-call','2025-03-04T05:06:07.000Z','2025-03-04T05:06:09.000Z','dropped','["inbound"]','audio/x-l16',8000,NULL,'/r/old-a.wav',100,1,5,NULL);
INSERT INTO "streams" VALUES(2,'b','old-call','2025-03-04T05:06:10.000Z',NULL,NULL,'["inbound"]','audio/x-l16',8000,NULL,'/r/old-b.wav',0,0,0,NULL);
CREATE INDEX calls_by_first_seen ON calls (first_seen);
CREATE INDEX streams_by_call ON streams (call_id);
CREATE INDEX open_streams_by_call ON streams (call_id) WHERE ended_at IS NULL;
CREATE INDEX call_events_by_call ON call_events (call_id);
CREATE INDEX status_callbacks_by_call ON status_callbacks (call_uuid);
COMMIT;
