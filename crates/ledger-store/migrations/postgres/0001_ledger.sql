-- The proxy's books (PostgreSQL). Every amount is a non-negative integer: adjusted tokens, or
-- nanoTON. Columns named *_tokens count adjusted tokens, *_nanoton count nanoTON; *_ms are Unix
-- times in milliseconds. The SQLite migration of the same number creates the same tables.

-- The prices the books were opened with (one row). A proxy contract never changes its prices, so
-- a store opened with other prices is refused.
CREATE TABLE ledger_meta (
    id                    SMALLINT PRIMARY KEY CHECK (id = 1),
    price_per_token       BIGINT NOT NULL CHECK (price_per_token > 0),
    worker_fee_per_token  BIGINT NOT NULL CHECK (worker_fee_per_token >= 0),
    prompt_multiplier     BIGINT NOT NULL,
    cached_multiplier     BIGINT NOT NULL,
    completion_multiplier BIGINT NOT NULL,
    reasoning_multiplier  BIGINT NOT NULL,
    created_at_ms         BIGINT NOT NULL
);

-- One row per client contract. tokens_used is the cumulative total of the client's charge
-- vouchers; anchored_tokens the part of it covered by a committed anchor (what may be signed).
CREATE TABLE client_accounts (
    client_id             TEXT PRIMARY KEY NOT NULL,
    state                 BIGINT NOT NULL DEFAULT 0 CHECK (state IN (0, 1)),
    balance_nanoton       BIGINT NOT NULL DEFAULT 0 CHECK (balance_nanoton >= 0),
    stake_nanoton         BIGINT NOT NULL DEFAULT 0 CHECK (stake_nanoton >= 0),
    tokens_on_chain       BIGINT NOT NULL DEFAULT 0 CHECK (tokens_on_chain >= 0),
    tokens_used           BIGINT NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    reserved_tokens       BIGINT NOT NULL DEFAULT 0 CHECK (reserved_tokens >= 0),
    shortfall_tokens      BIGINT NOT NULL DEFAULT 0 CHECK (shortfall_tokens >= 0),
    deposited_nanoton     BIGINT NOT NULL DEFAULT 0 CHECK (deposited_nanoton >= 0),
    charged_nanoton       BIGINT NOT NULL DEFAULT 0 CHECK (charged_nanoton >= 0),
    shortfall_nanoton     BIGINT NOT NULL DEFAULT 0 CHECK (shortfall_nanoton >= 0),
    requests              BIGINT NOT NULL DEFAULT 0 CHECK (requests >= 0),
    anchored_tokens       BIGINT NOT NULL DEFAULT 0 CHECK (anchored_tokens >= 0),
    pending_anchor_seqno  BIGINT,
    pending_anchor_tokens BIGINT,
    refund_tokens         BIGINT,
    refund_nanoton        BIGINT,
    updated_at_ms         BIGINT NOT NULL
);

-- One row per worker contract. tokens_earned is the cumulative total of the worker's payout
-- vouchers, tokens_paid what its contract has already paid out.
CREATE TABLE worker_accounts (
    worker_id             TEXT PRIMARY KEY NOT NULL,
    tokens_earned         BIGINT NOT NULL DEFAULT 0 CHECK (tokens_earned >= 0),
    tokens_paid           BIGINT NOT NULL DEFAULT 0 CHECK (tokens_paid >= 0),
    credited_nanoton      BIGINT NOT NULL DEFAULT 0 CHECK (credited_nanoton >= 0),
    commission_nanoton    BIGINT NOT NULL DEFAULT 0 CHECK (commission_nanoton >= 0),
    paid_nanoton          BIGINT NOT NULL DEFAULT 0 CHECK (paid_nanoton >= 0),
    requests              BIGINT NOT NULL DEFAULT 0 CHECK (requests >= 0),
    anchored_tokens       BIGINT NOT NULL DEFAULT 0 CHECK (anchored_tokens >= 0),
    pending_anchor_seqno  BIGINT,
    pending_anchor_tokens BIGINT,
    updated_at_ms         BIGINT NOT NULL,
    CHECK (tokens_paid <= tokens_earned)
);

-- One row per request. state 0: reserved (in flight; such rows are deleted when the store is
-- opened, since requests in flight do not survive a restart); state 1: charged (never changes
-- again). The unique request id makes charging idempotent.
CREATE TABLE requests (
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id            BYTEA NOT NULL UNIQUE CHECK (octet_length(request_id) = 32),
    state                 BIGINT NOT NULL CHECK (state IN (0, 1)),
    client_id             TEXT NOT NULL REFERENCES client_accounts (client_id),
    worker_id             TEXT REFERENCES worker_accounts (worker_id),
    reserved_tokens       BIGINT NOT NULL DEFAULT 0 CHECK (reserved_tokens >= 0),
    coefficient           BIGINT NOT NULL DEFAULT 0,
    prompt_tokens         BIGINT NOT NULL DEFAULT 0,
    cached_tokens         BIGINT NOT NULL DEFAULT 0,
    completion_tokens     BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens      BIGINT NOT NULL DEFAULT 0,
    adjusted_tokens       BIGINT NOT NULL DEFAULT 0,
    charged_tokens        BIGINT NOT NULL DEFAULT 0,
    shortfall_tokens      BIGINT NOT NULL DEFAULT 0,
    client_charge_nanoton BIGINT NOT NULL DEFAULT 0,
    shortfall_nanoton     BIGINT NOT NULL DEFAULT 0,
    worker_credit_nanoton BIGINT NOT NULL DEFAULT 0,
    commission_nanoton    BIGINT NOT NULL DEFAULT 0,
    client_tokens_used    BIGINT NOT NULL DEFAULT 0,
    worker_tokens_earned  BIGINT NOT NULL DEFAULT 0,
    reserved_at_ms        BIGINT,
    charged_at_ms         BIGINT,
    CHECK (state = 0 OR (worker_id IS NOT NULL AND charged_at_ms IS NOT NULL)),
    CHECK (client_charge_nanoton + shortfall_nanoton
           = worker_credit_nanoton + commission_nanoton)
);
CREATE INDEX requests_by_client ON requests (client_id, seq);
CREATE INDEX requests_by_worker ON requests (worker_id, seq);
CREATE INDEX requests_by_state ON requests (state);

-- The ledger's anchors: seqno and state hash as sent on chain in save_state. An anchor is
-- prepared (its hash fixed and every account's total noted as pending), then committed once the
-- chain has it; committing makes the pending totals signable.
CREATE TABLE ledger_anchors (
    seqno                 BIGINT PRIMARY KEY CHECK (seqno > 0),
    state_hash            BYTEA NOT NULL CHECK (octet_length(state_hash) = 32),
    previous_hash         BYTEA NOT NULL CHECK (octet_length(previous_hash) = 32),
    clients               BIGINT NOT NULL,
    workers               BIGINT NOT NULL,
    requests              BIGINT NOT NULL,
    prepared_at_ms        BIGINT NOT NULL,
    committed_at_ms       BIGINT
);
