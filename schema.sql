-- EVA-00 Sync: the replica's schema.
--
-- Applied by `eva00 db init` and by every stage at start, under an advisory lock (eva00/db.py), so
-- it must stay idempotent: CREATE ... IF NOT EXISTS, CREATE OR REPLACE FUNCTION/VIEW/TRIGGER
-- (PostgreSQL >= 14) and, for later additions, ALTER TABLE ... ADD COLUMN IF NOT EXISTS. Nothing
-- here may ever DROP or rewrite data: construction records are legal documents.
--
-- Entity tables hold every record ever seen, soft-deleted ones included; the `live` schema shows
-- what exists in Procore today. Kind names and their tables are the contract of eva00/kinds.py;
-- tests/integration/test_schema.py fails when the two disagree.

-- "relation already exists, skipping" on every stage start is noise, not news.
SET LOCAL client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS live;

-- ---------------------------------------------------------------------------------------------
-- Guards shared by the protected tables
-- ---------------------------------------------------------------------------------------------

-- BEFORE DELETE (row) and BEFORE TRUNCATE (statement) on every table of legal records. The
-- optional argument says what to do instead. restrict_violation is an integrity error, so a
-- caller that tries sees a bug to fix, not an outage to wait out.
CREATE OR REPLACE FUNCTION eva00_refuse_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eva00: % rows are legal records and are never deleted%', TG_TABLE_NAME,
        CASE WHEN TG_NARGS > 0 THEN '; ' || TG_ARGV[0] ELSE '' END
        USING ERRCODE = 'restrict_violation';
END
$$;

-- AFTER INSERT / AFTER UPDATE (statement, with the new rows as a transition table) on every
-- entity table: each payload a row ever held is kept in record_versions, whoever wrote it (the
-- differ, the PDF importer, an operator's fix). A statement trigger costs one anti-join per
-- statement instead of one call per row. NOT EXISTS first, so rows already known never draw a
-- value from the id sequence; ON CONFLICT covers a concurrent writer of the same version.
CREATE OR REPLACE FUNCTION eva00_keep_versions() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO record_versions (entity_type, kind, procore_id, project_id, payload_hash, payload,
                                 source)
    SELECT TG_TABLE_NAME, n.kind, n.procore_id, n.project_id, n.payload_hash, n.payload, n.source
      FROM new_rows n
     WHERE NOT EXISTS (SELECT 1 FROM record_versions v
                        WHERE v.kind = n.kind AND v.procore_id = n.procore_id
                          AND coalesce(v.project_id, 0) = coalesce(n.project_id, 0)
                          AND v.payload_hash = n.payload_hash)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Refuse DELETE and TRUNCATE on one table.
CREATE OR REPLACE FUNCTION eva00_protect(target regclass, instead text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = target);
    args text := CASE WHEN instead IS NULL THEN '' ELSE quote_literal(instead) END;
BEGIN
    EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE DELETE ON %s FOR EACH ROW'
                   ' EXECUTE FUNCTION eva00_refuse_delete(%s)', name || '_no_delete', target, args);
    EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION eva00_refuse_delete(%s)', name || '_no_truncate', target, args);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- History and files
-- ---------------------------------------------------------------------------------------------

-- Every distinct payload ever seen per record, stale fetches included.
CREATE TABLE IF NOT EXISTS record_versions (
    id bigserial PRIMARY KEY,
    entity_type text NOT NULL,  -- the entity table's name
    kind text NOT NULL,
    procore_id bigint NOT NULL,
    project_id bigint,
    payload_hash text NOT NULL,
    payload jsonb NOT NULL,
    source text NOT NULL CHECK (source IN ('api', 'webhook', 'pdf_import')),
    first_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS record_versions_identity
    ON record_versions (kind, procore_id, (coalesce(project_id, 0)), payload_hash);

-- File bytes by content: one row per distinct SHA-256, stored once however many records link it.
CREATE TABLE IF NOT EXISTS files (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    content_type text,
    storage_path text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Which record field points at which file version, and where its download stands.
-- status: pending -> downloaded | failed | expired (a signed URL that ran out; re-fetch the record).
CREATE TABLE IF NOT EXISTS record_files (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    procore_id bigint NOT NULL,
    project_id bigint,
    url_field text NOT NULL,  -- 'pdf_url', 'url', 'attachments[id=12].url', ...
    procore_file_id text,
    procore_version_id text,
    source_url text,
    expected_size_bytes bigint,
    sha256 text REFERENCES files (sha256),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'downloaded', 'failed', 'expired')),
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS record_files_identity
    ON record_files (kind, procore_id, (coalesce(project_id, 0)), url_field,
                     (coalesce(procore_file_id, '')), (coalesce(procore_version_id, '')));
-- The downloaders' work list, oldest first; it stays small however large the table grows.
CREATE INDEX IF NOT EXISTS record_files_pending ON record_files (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS record_files_sha256 ON record_files (sha256);

CREATE TABLE IF NOT EXISTS thumbnails (
    source_sha256 text NOT NULL REFERENCES files (sha256),
    variant text NOT NULL DEFAULT 'default',  -- room for several sizes of one source
    thumbnail_sha256 text NOT NULL REFERENCES files (sha256),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_sha256, variant)
);

CREATE TABLE IF NOT EXISTS file_texts (
    sha256 text PRIMARY KEY REFERENCES files (sha256),
    text text NOT NULL,
    -- The two-argument to_tsvector is immutable, as a generated column requires.
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS file_texts_tsv ON file_texts USING gin (tsv);

SELECT eva00_protect('record_versions');
SELECT eva00_protect('files');
SELECT eva00_protect('record_files');
SELECT eva00_protect('thumbnails');
SELECT eva00_protect('file_texts');

-- ---------------------------------------------------------------------------------------------
-- Entity tables: one per family, identical common columns, built from one definition
-- ---------------------------------------------------------------------------------------------

DO $entities$
DECLARE
    family record;
    union_sql text := '';
BEGIN
    FOR family IN SELECT * FROM (VALUES
        ('projects', ARRAY['project']),
        ('companies', ARRAY['vendor']),
        ('contacts', ARRAY['company_user', 'project_user']),
        ('spec_sections', ARRAY['spec_section', 'spec_section_revision']),
        ('submittals', ARRAY['submittal']),
        ('rfis', ARRAY['rfi']),
        ('change_orders', ARRAY['change_event', 'change_order_package', 'potential_change_order',
                                'prime_change_order']),
        ('meetings', ARRAY['meeting']),
        ('drawings', ARRAY['drawing_area', 'drawing', 'drawing_set']),
        ('drawing_revisions', ARRAY['drawing_revision']),
        ('photos', ARRAY['image', 'image_category']),
        ('documents', ARRAY['document']),
        ('daily_logs', ARRAY['daily_log_header', 'manpower_log', 'notes_log', 'weather_log',
                             'delivery_log']),
        ('schedule_tasks', ARRAY['task'])
    ) AS f (entity_table, kinds)
    LOOP
        EXECUTE format($table$
            CREATE TABLE IF NOT EXISTS %1$I (
                id bigserial PRIMARY KEY,
                kind text NOT NULL CONSTRAINT %2$I CHECK (kind = ANY (%3$L::text[])),
                procore_id bigint NOT NULL,
                project_id bigint,  -- NULL for company-level kinds
                payload jsonb NOT NULL,
                payload_hash text NOT NULL,
                procore_updated_at timestamptz,
                -- Procore's Date header of the fetch that produced the payload: a row is never
                -- overwritten by a fetch older than this (server clock, not ours).
                fetched_at timestamptz NOT NULL,
                first_seen_at timestamptz NOT NULL DEFAULT now(),
                local_updated_at timestamptz NOT NULL DEFAULT now(),
                is_deleted boolean NOT NULL DEFAULT false,
                deleted_at timestamptz,
                delete_pending boolean NOT NULL DEFAULT false,  -- a delete webhook awaits its check
                source text NOT NULL CHECK (source IN ('api', 'webhook', 'pdf_import'))
            )$table$, family.entity_table, family.entity_table || '_kind_check', family.kinds);

        -- Project users repeat across projects; every other id is globally unique anyway.
        EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I'
                       ' (kind, procore_id, (coalesce(project_id, 0)))',
                       family.entity_table || '_identity', family.entity_table);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (project_id, kind)',
                       family.entity_table || '_project_kind', family.entity_table);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (procore_updated_at)',
                       family.entity_table || '_procore_updated_at', family.entity_table);

        -- The PDF log importer matches RFIs and submittals by project and number.
        IF family.entity_table IN ('rfis', 'submittals') THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS number text'
                           ' GENERATED ALWAYS AS (payload->>''number'') STORED',
                           family.entity_table);
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (project_id, number)',
                           family.entity_table || '_project_number', family.entity_table);
        END IF;

        -- Who raised delete_pending: 'listing' (a complete listing missed the row and the guard
        -- held it) or 'webhook' (a delete event, unauthenticated in substance: Procore signs
        -- nothing). Only a listing's flag is the mass-delete guard's second signal
        -- (eva00/replica/deletes.py). Read only while delete_pending is true.
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS delete_pending_source text',
                       family.entity_table);

        PERFORM eva00_protect(family.entity_table::regclass, 'set is_deleted instead');
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT ON %I'
                       ' REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION eva00_keep_versions()',
                       family.entity_table || '_versions_insert', family.entity_table);
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER UPDATE ON %I'
                       ' REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION eva00_keep_versions()',
                       family.entity_table || '_versions_update', family.entity_table);

        -- Analysts query live.<table>; the table itself keeps everything.
        EXECUTE format('CREATE OR REPLACE VIEW live.%1$I AS SELECT * FROM %1$I WHERE NOT is_deleted',
                       family.entity_table);

        union_sql := union_sql || CASE WHEN union_sql = '' THEN '' ELSE ' UNION ALL ' END
            || format('SELECT %1$L::text AS entity_type, kind, procore_id, project_id, payload,'
                      ' payload_hash, procore_updated_at, is_deleted FROM %1$I', family.entity_table);
    END LOOP;

    -- Every record of every entity table, for generic readers and verification.
    EXECUTE 'CREATE OR REPLACE VIEW replica_records AS ' || union_sql;
END
$entities$;

-- ---------------------------------------------------------------------------------------------
-- Sync bookkeeping
-- ---------------------------------------------------------------------------------------------

-- Incremental cursors: the server time up to which a kind (in a project) is known complete.
CREATE TABLE IF NOT EXISTS sync_cursors (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    project_id bigint,
    cursor_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_cursors_identity
    ON sync_cursors (kind, (coalesce(project_id, 0)));

-- Full-sync checkpoints, so an interrupted full sync resumes at its first missing page.
CREATE TABLE IF NOT EXISTS sync_progress (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    kind text NOT NULL,
    project_id bigint,
    page int NOT NULL,
    pages_total int,
    status text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_progress_identity
    ON sync_progress (run_id, kind, (coalesce(project_id, 0)), page);

-- The differ's record of committed pages: one row per (poll, page) makes a redelivered page
-- recognisable, and the last page's row says whether the poll was complete.
CREATE TABLE IF NOT EXISTS poll_pages (
    poll_id text NOT NULL,
    page int NOT NULL,
    kind text NOT NULL,
    project_id bigint,
    mode text NOT NULL,
    is_last boolean NOT NULL DEFAULT false,
    pages_total int,
    complete boolean NOT NULL DEFAULT false,
    window_to timestamptz,
    run_id text NOT NULL DEFAULT '',
    items int NOT NULL DEFAULT 0,
    committed_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (poll_id, page)
);
CREATE INDEX IF NOT EXISTS poll_pages_committed_at ON poll_pages (committed_at);

-- Ids seen by a delete-reconciliation poll, page by page, until its last page commits.
CREATE TABLE IF NOT EXISTS reconcile_seen (
    poll_id text NOT NULL,
    procore_id bigint NOT NULL,
    PRIMARY KEY (poll_id, procore_id)
);

-- What the sync did to which record. Not a legal record itself: archived, then pruned.
CREATE TABLE IF NOT EXISTS sync_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    kind text,
    procore_id bigint,
    project_id bigint,
    direction text NOT NULL DEFAULT 'in' CHECK (direction IN ('in', 'out')),
    action text NOT NULL,  -- insert, update, stale, conflict, restore, soft_delete, ...
    result text,
    payload_hash text,
    detail jsonb
);
CREATE INDEX IF NOT EXISTS sync_log_at ON sync_log (at);
CREATE INDEX IF NOT EXISTS sync_log_record ON sync_log (kind, procore_id);

-- ---------------------------------------------------------------------------------------------
-- Operations
-- ---------------------------------------------------------------------------------------------

-- open -> acknowledged -> resolved; while not resolved, one row per key counts occurrences.
CREATE TABLE IF NOT EXISTS alerts (
    id bigserial PRIMARY KEY,
    alert_key text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    opened_at timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    resolved_at timestamptz,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    occurrences int NOT NULL DEFAULT 1
);
-- eva00/alerts.py's ON CONFLICT (alert_key) WHERE status <> 'resolved' names this index.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_key ON alerts (alert_key) WHERE status <> 'resolved';

CREATE TABLE IF NOT EXISTS oauth_tokens (
    name text PRIMARY KEY DEFAULT 'default',
    auth_mode text,
    access_token text,
    access_expires_at timestamptz,
    refresh_token text,
    -- Bumped by every refresh: a process holding an older generation knows its token is stale.
    generation bigint NOT NULL DEFAULT 0,
    obtained_at timestamptz,
    last_refreshed_at timestamptz,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- status: received -> enqueued | ignored; enqueued -> processed (eva00/webhooks/intake.py).
CREATE TABLE IF NOT EXISTS webhook_events (
    id bigserial PRIMARY KEY,
    event_key text NOT NULL UNIQUE,  -- Procore's ulid, or its id
    received_at timestamptz NOT NULL DEFAULT now(),
    company_id bigint,
    project_id bigint,
    resource_name text,
    resource_id bigint,
    event_type text,
    api_version text,
    payload jsonb,
    status text NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'enqueued', 'ignored', 'processed')),
    detail text
);
-- An authenticated body that could not be parsed or stored as JSON (bad JSON, an unknown payload
-- version, NUL characters jsonb refuses): kept escaped and truncated, the reason in detail.
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS raw_body text;
-- Events a crash left unfinished, for the intake's requeue.
CREATE INDEX IF NOT EXISTS webhook_events_received
    ON webhook_events (received_at) WHERE status = 'received';
-- Retention (eva00/ops/webhook_retention.py) finds finished events by age.
CREATE INDEX IF NOT EXISTS webhook_events_received_at ON webhook_events (received_at);

CREATE TABLE IF NOT EXISTS dead_letters (
    id bigserial PRIMARY KEY,
    stream text NOT NULL,
    group_name text,
    message_id text NOT NULL,
    fields jsonb,
    error text,
    deliveries int,
    at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, message_id)
);

-- The hash of each show-backed record's LIST entry (RFIs, submittals): the fetcher calls the
-- show endpoint only for records whose list entry changed since the last fetch.
CREATE TABLE IF NOT EXISTS list_hashes (
    kind text NOT NULL,
    procore_id bigint NOT NULL,
    project_id bigint,
    list_hash text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS list_hashes_identity
    ON list_hashes (kind, procore_id, (coalesce(project_id, 0)));

-- ---------------------------------------------------------------------------------------------
-- Monitoring (issue 10): alert delivery bookkeeping, sync_log archive batches
-- ---------------------------------------------------------------------------------------------

-- Set once every configured sink has the "opened" (resp. "resolved") notice: rows still NULL
-- are the delivery queue, so a crash delays a notification but never loses it.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS notified_at timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolved_notified_at timestamptz;
CREATE INDEX IF NOT EXISTS alerts_undelivered ON alerts (id)
    WHERE notified_at IS NULL OR (status = 'resolved' AND resolved_notified_at IS NULL);

-- One row per (alert, event, sink) delivered, so a sink that failed is retried alone and one
-- that succeeded is not sent the same notice again.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id bigint NOT NULL REFERENCES alerts (id),
    event text NOT NULL CHECK (event IN ('opened', 'resolved')),
    sink text NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, event, sink)
);

-- The freshness query's "last complete poll per kind and project".
CREATE INDEX IF NOT EXISTS poll_pages_finished
    ON poll_pages (kind, (coalesce(project_id, 0)), finished_at) WHERE is_last AND complete;

-- sync_log archiving (eva00/archive.py): planned -> appending -> done. A batch's rows are deleted
-- in the same transaction that marks it done, after its gzip member is fsynced at `offset_bytes`
-- of the month's file; a re-run truncates an 'appending' batch's file back to that offset first.
CREATE TABLE IF NOT EXISTS archive_batches (
    id bigserial PRIMARY KEY,
    month text NOT NULL CHECK (month ~ '^[0-9]{4}-[0-9]{2}$'),
    row_ids bigint[] NOT NULL,
    status text NOT NULL DEFAULT 'planned' CHECK (status IN ('planned', 'appending', 'done')),
    offset_bytes bigint,
    end_offset_bytes bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz
);
CREATE INDEX IF NOT EXISTS archive_batches_unfinished ON archive_batches (id) WHERE status <> 'done';

-- ---------------------------------------------------------------------------------------------
-- Full sync (eva00/fullsync.py, issue 6)
-- ---------------------------------------------------------------------------------------------

-- One initial full sync: its scope, phases and outcome. status: running -> complete | incomplete.
CREATE TABLE IF NOT EXISTS fullsync_runs (
    run_id text PRIMARY KEY,
    project_ids bigint[],  -- NULL: every project
    phases int[] NOT NULL,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'complete', 'incomplete')),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    reason text
);

-- Every poll job of a run, written by whoever enqueues it in the same transaction that decides
-- it (the full-sync command for the top-level jobs, the fetcher for continuations, fan-outs and
-- date windows), so a run survives the loss of Redis: a re-run re-enqueues what is queued here
-- and not in a stream. state: queued -> done; outcome: paged (a page went to the differ),
-- planned (only jobs came out), refused (403/404), skipped (its page was already committed).
CREATE TABLE IF NOT EXISTS fullsync_jobs (
    run_id text NOT NULL,
    job_key text NOT NULL,
    parent_key text,
    phase int NOT NULL,
    kind text NOT NULL,
    project_id bigint,
    poll_id text NOT NULL DEFAULT '',
    page int NOT NULL DEFAULT 1,
    job jsonb NOT NULL,
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
    outcome text,
    requests int NOT NULL DEFAULT 0,
    shows int NOT NULL DEFAULT 0,
    shows_needed int NOT NULL DEFAULT 0,
    listed int NOT NULL DEFAULT 0,
    total int,
    paged boolean NOT NULL DEFAULT true,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz,
    PRIMARY KEY (run_id, job_key)
);
CREATE INDEX IF NOT EXISTS fullsync_jobs_queued ON fullsync_jobs (run_id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS poll_pages_run ON poll_pages (run_id) WHERE run_id <> '';

-- ---------------------------------------------------------------------------------------------
-- Files: downloader, thumbnails, text extraction and search (issue 7)
-- ---------------------------------------------------------------------------------------------

-- Files a stage cannot read (a corrupt PDF or image): logged once per (file, stage) and never
-- retried, so one bad file cannot stall the thumbnailer or the text extractor.
CREATE TABLE IF NOT EXISTS file_quarantine (
    sha256 text NOT NULL REFERENCES files (sha256),
    stage text NOT NULL,  -- 'thumbnails' | 'text'
    error text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sha256, stage)
);

-- The reconciler's work list: pending links not touched for a while (their job may be lost).
CREATE INDEX IF NOT EXISTS record_files_pending_since
    ON record_files (updated_at) WHERE status = 'pending';

-- `eva00 search`: full text of every string in each record's payload, one GIN index per entity
-- table (found through their history triggers, so a new family is covered without an edit here).
DO $search$
DECLARE
    entity text;
BEGIN
    FOR entity IN SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                   WHERE t.tgname = c.relname || '_versions_insert'
    LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I USING gin'
                       ' (jsonb_to_tsvector(''english'', payload, ''["string"]''))',
                       entity || '_payload_fts', entity);
    END LOOP;
END
$search$;

-- The scheduler's plan per (kind, project): how often to poll it and when next (README "How
-- often each kind is polled"). A change found moves the pair back to its family's interval;
-- quiet polls stretch it up to the maximum staleness; inactive projects are polled at that.
ALTER TABLE poll_pages ADD COLUMN IF NOT EXISTS changed int NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS poll_plans (
    kind text NOT NULL,
    project_id bigint NOT NULL,  -- 0 for company-level kinds
    seed_s integer NOT NULL,  -- the family's configured interval
    interval_s integer NOT NULL,  -- the planned one
    next_poll_at timestamptz NOT NULL,
    quiet_polls integer NOT NULL DEFAULT 0,  -- complete polls in a row that changed nothing
    last_change_at timestamptz,
    last_finished_at timestamptz,  -- the newest finished poll applied to this plan
    cost integer NOT NULL DEFAULT 1,  -- requests (pages) the last poll took
    PRIMARY KEY (kind, project_id)
);
CREATE INDEX IF NOT EXISTS poll_plans_due ON poll_plans (next_poll_at);
-- When the pair's job was due (set as it is enqueued): the next poll is planned so that polls
-- finish one interval apart, queueing and fetching time included.
ALTER TABLE poll_plans ADD COLUMN IF NOT EXISTS due_at timestamptz;

-- ---------------------------------------------------------------------------------------------
-- Tools switched off per project (issue 16): Procore refuses a tool a project does not use (403,
-- or 404). The first refusal marks the (project, kind) unavailable; nothing asks for it again
-- until next_check_at (EVA00_UNAVAILABLE_RECHECK_S later); an answer then makes it available.
-- A pair's first answer is kept too ('available'), so only a pair never answered waits for a lock.
-- SQL in eva00/replica/unavailable.py.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS unavailable_tools (
    project_id bigint NOT NULL,
    kind text NOT NULL,
    status text NOT NULL DEFAULT 'unavailable',  -- 'unavailable' | 'available' (a recheck answered)
    reason text,  -- "403: The Daily Log tool is not enabled for this project"
    http_status integer,
    refusals integer NOT NULL DEFAULT 1,  -- refused requests since first_refused_at
    first_refused_at timestamptz,  -- NULL: never refused
    last_checked_at timestamptz NOT NULL,
    next_check_at timestamptz NOT NULL,
    available_since timestamptz,
    PRIMARY KEY (project_id, kind)
);
CREATE INDEX IF NOT EXISTS unavailable_tools_due ON unavailable_tools (next_check_at)
    WHERE status = 'unavailable';

-- The fetcher's "has this parent kind ever been listed in this project" (polls.has_finished_poll)
-- on every drawing and child poll: without it a scan of every poll page ever committed.
CREATE INDEX IF NOT EXISTS poll_pages_kind_project_finished
    ON poll_pages (kind, project_id) WHERE finished_at IS NOT NULL;
