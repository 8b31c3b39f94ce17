// Emulated TON chain for local mode and tests: a @ton/sandbox Blockchain driven over a JSON-lines
// protocol on stdin/stdout, so Rust code runs the real compiled contracts (contracts/build/*.json)
// in the real TVM emulator instead of re-implementing them. The protocol is described in
// docs/chain.md; crates/chain (EmulatedChain) is its client.
//
// Every request is one line `{"id":N,"method":"...","params":{...}}`; every answer is one line
// `{"id":N,"result":{...}}` or `{"id":N,"error":{"code":"...","message":"...","exit_code":N?}}`.
// Requests are handled one at a time, in order: the sandbox is not built for concurrent sends.
// Nothing but protocol lines goes to stdout; logs go to stderr.
//
// Shared service: with COCOON_SIDECAR_LISTEN=host:port (port 0 picks a free one) the sidecar also
// accepts TCP connections speaking the same protocol, so several processes see ONE chain. Every
// connection gets the ready line first; ids are per connection; requests from all connections go
// through the same queue. The ready line on stdout then carries "listen": "host:port".

import { createInterface } from 'node:readline';
import { createServer } from 'node:net';
import { format } from 'node:util';
import { Blockchain, GetMethodError, EmulationError } from '@ton/sandbox';
import { Address, beginCell, Cell, internal as relaxedInternal, loadStateInit, SendMode, storeMessage, storeStateInit } from '@ton/core';

// Keep stdout for protocol lines only: the sandbox and its executor print with console.*.
for (const level of ['log', 'info', 'warn', 'debug', 'error', 'trace']) {
    console[level] = (...args) => process.stderr.write(format(...args) + '\n');
}

const PROTOCOL_VERSION = 1;

class RequestError extends Error {
    constructor(code, message, extra = {}) {
        super(message);
        this.code = code;
        this.extra = extra;
    }
}

function badRequest(message) {
    return new RequestError('bad_request', message);
}

// ---------------------------------------------------------------------------------------------
// Parameter decoding

function param(params, name) {
    if (params === null || typeof params !== 'object' || !(name in params)) {
        throw badRequest(`missing parameter "${name}"`);
    }
    return params[name];
}

function optional(params, name) {
    return params !== null && typeof params === 'object' && params[name] !== undefined && params[name] !== null
        ? params[name]
        : undefined;
}

function parseAddress(text, name) {
    if (typeof text !== 'string') throw badRequest(`"${name}" must be an address string`);
    try {
        return Address.parse(text);
    } catch (e) {
        throw badRequest(`"${name}" is not an address: ${e.message}`);
    }
}

function parseCell(base64, name) {
    if (typeof base64 !== 'string') throw badRequest(`"${name}" must be a base64 BOC string`);
    let cells;
    try {
        cells = Cell.fromBoc(Buffer.from(base64, 'base64'));
    } catch (e) {
        throw badRequest(`"${name}" is not a BOC: ${e.message}`);
    }
    if (cells.length !== 1) throw badRequest(`"${name}" must hold exactly one root cell, not ${cells.length}`);
    return cells[0];
}

function parseNanotons(text, name) {
    if (typeof text !== 'string' || !/^[0-9]{1,40}$/.test(text)) {
        throw badRequest(`"${name}" must be a decimal string of nanotons`);
    }
    return BigInt(text);
}

function parseUnixTime(value, name) {
    if (!Number.isSafeInteger(value) || value < 0 || value > 0xffffffff) {
        throw badRequest(`"${name}" must be a unix time in seconds`);
    }
    return value;
}

function parseStackItem(item, path) {
    if (item === null || typeof item !== 'object') throw badRequest(`stack item ${path} must be an object`);
    switch (item.type) {
        case 'int':
            if (typeof item.value !== 'string' || !/^-?[0-9]+$/.test(item.value)) {
                throw badRequest(`stack item ${path}: "value" must be a decimal integer string`);
            }
            return { type: 'int', value: BigInt(item.value) };
        case 'null':
            return { type: 'null' };
        case 'cell':
        case 'slice':
        case 'builder':
            return { type: item.type, cell: parseCell(item.boc, `${path}.boc`) };
        case 'tuple':
            if (!Array.isArray(item.items)) throw badRequest(`stack item ${path}: "items" must be an array`);
            return { type: 'tuple', items: item.items.map((x, i) => parseStackItem(x, `${path}.${i}`)) };
        default:
            throw badRequest(`stack item ${path}: unknown type ${JSON.stringify(item.type)}`);
    }
}

// ---------------------------------------------------------------------------------------------
// Result encoding

const raw = (address) => (address ? address.toRawString() : null);
const boc = (cell) => cell.toBoc().toString('base64');

function stackItemJson(item) {
    switch (item.type) {
        case 'int':
            return { type: 'int', value: item.value.toString() };
        case 'null':
            return { type: 'null' };
        case 'nan':
            return { type: 'nan' };
        case 'cell':
        case 'slice':
        case 'builder':
            return { type: item.type, boc: boc(item.cell) };
        case 'tuple':
            return { type: 'tuple', items: item.items.map(stackItemJson) };
        default:
            throw new RequestError('internal', `unknown stack item type ${item.type}`);
    }
}

function opOf(body) {
    if (!body) return null;
    const s = body.beginParse();
    return s.remainingBits >= 32 ? s.loadUint(32) : null;
}

function messageJson(message) {
    const info = message.info;
    const out = {
        type: info.type,
        src: info.type === 'external-in' ? null : raw(info.src),
        dest: info.type === 'external-out' ? null : raw(info.dest),
        value: info.type === 'internal' ? info.value.coins.toString() : '0',
        bounce: info.type === 'internal' ? info.bounce : false,
        bounced: info.type === 'internal' ? info.bounced : false,
        op: opOf(message.body),
        body: boc(message.body ?? beginCell().endCell()),
    };
    if (info.type === 'external-out' && info.dest) out.ext_dest = info.dest.toString();
    return out;
}

function txAccount(tx) {
    const m = tx.inMessage;
    if (m && m.info.type !== 'external-out' && m.info.dest) return raw(m.info.dest);
    const hex = tx.address.toString(16).padStart(64, '0');
    return `0:${hex}`;
}

function transactionJson(tx) {
    const d = tx.description;
    let compute = { type: 'skipped', reason: 'no compute phase' };
    let action = null;
    let aborted = false;
    if (d.type === 'generic' || d.type === 'tick-tock') {
        const c = d.computePhase;
        compute =
            c.type === 'vm'
                ? { type: 'vm', success: c.success, exit_code: c.exitCode, gas_used: c.gasUsed.toString() }
                : { type: 'skipped', reason: c.reason };
        action = d.actionPhase ? { success: d.actionPhase.success, result_code: d.actionPhase.resultCode } : null;
        aborted = d.aborted;
    }
    return {
        account: txAccount(tx),
        lt: tx.lt.toString(),
        hash: tx.hash().toString('hex'),
        now: tx.now,
        in_msg: tx.inMessage ? messageJson(tx.inMessage) : null,
        out_msgs: tx.outMessages.values().map(messageJson),
        compute,
        action,
        aborted,
        total_fees: tx.totalFees.coins.toString(),
    };
}

function accountJson(address, contract) {
    const state = contract.accountState;
    const account = contract.account.account;
    let status = 'nonexist';
    let code = null;
    let data = null;
    if (account) {
        if (!state || state.type === 'uninit') status = 'uninit';
        else if (state.type === 'frozen') status = 'frozen';
        else {
            status = 'active';
            code = state.state.code ? boc(state.state.code) : null;
            data = state.state.data ? boc(state.state.data) : null;
        }
    }
    const lastLt = contract.lastTransactionLt;
    return {
        address: raw(address),
        status,
        balance: contract.balance.toString(),
        code,
        data,
        last_tx_lt: lastLt === 0n ? null : lastLt.toString(),
        last_tx_hash: lastLt === 0n ? null : contract.lastTransactionHash.toString(16).padStart(64, '0'),
    };
}

// ---------------------------------------------------------------------------------------------
// The chain

const blockchain = await Blockchain.create();
blockchain.verbosity = { print: true, blockchainLogs: false, vmLogs: 'none', debugLogs: false };
blockchain.now = Number(process.env.COCOON_SIDECAR_START_TIME ?? Math.floor(Date.now() / 1000));

/** Treasury wallets by raw address: the funded local wallets that send internal messages. */
const wallets = new Map();
/** Saved states by id. */
const snapshots = new Map();
let nextSnapshotId = 1;
/** One "block" per processed send, so callers can see the chain move. */
let seqno = 0;

async function send(run) {
    let result;
    try {
        result = await run();
    } catch (e) {
        if (e instanceof EmulationError) {
            throw new RequestError('emulation_failed', e.error ?? e.message, e.exitCode === undefined ? {} : { exit_code: e.exitCode });
        }
        if (e instanceof RequestError) throw e;
        throw new RequestError('emulation_failed', e.message ?? String(e));
    }
    seqno += 1;
    const first = result.transactions[0]?.inMessage;
    const messageHash = first ? beginCell().store(storeMessage(first)).endCell().hash().toString('hex') : null;
    return { message_hash: messageHash, transactions: result.transactions.map(transactionJson) };
}

function walletFor(params) {
    const from = parseAddress(param(params, 'from'), 'from');
    const wallet = wallets.get(from.toRawString());
    if (!wallet) throw new RequestError('unknown_wallet', `no local wallet ${from.toRawString()}; create it with create_wallet first`);
    return wallet;
}

const methods = {
    async hello() {
        return { protocol: PROTOCOL_VERSION, node: process.version, now: blockchain.now, seqno };
    },

    async status() {
        return { now: blockchain.now, seqno, lt: blockchain.lt.toString() };
    },

    async set_time(params) {
        const now = parseUnixTime(param(params, 'now'), 'now');
        if (now < blockchain.now) throw badRequest(`time cannot go back (now ${blockchain.now}, asked ${now})`);
        blockchain.now = now;
        return { now };
    },

    async advance_time(params) {
        const seconds = param(params, 'seconds');
        if (!Number.isSafeInteger(seconds) || seconds < 0) throw badRequest('"seconds" must be a non-negative integer');
        blockchain.now = parseUnixTime(blockchain.now + seconds, 'now');
        return { now: blockchain.now };
    },

    async create_wallet(params) {
        const name = param(params, 'name');
        if (typeof name !== 'string' || name.length === 0) throw badRequest('"name" must be a non-empty string');
        const balance = parseNanotons(param(params, 'balance'), 'balance');
        const wallet = await blockchain.treasury(name, { balance });
        const contract = await blockchain.getContract(wallet.address);
        // An existing wallet of the same name keeps its history but gets the asked balance.
        contract.balance = balance;
        wallets.set(wallet.address.toRawString(), wallet);
        return { address: raw(wallet.address) };
    },

    async send_internal(params) {
        const wallet = walletFor(params);
        const to = parseAddress(param(params, 'to'), 'to');
        const value = parseNanotons(param(params, 'value'), 'value');
        const bounce = optional(params, 'bounce') ?? true;
        if (typeof bounce !== 'boolean') throw badRequest('"bounce" must be a boolean');
        const bodyB64 = optional(params, 'body');
        const initB64 = optional(params, 'state_init');
        const body = bodyB64 === undefined ? beginCell().endCell() : parseCell(bodyB64, 'body');
        let init;
        if (initB64 !== undefined) {
            try {
                init = loadStateInit(parseCell(initB64, 'state_init').beginParse());
            } catch (e) {
                if (e instanceof RequestError) throw e;
                throw badRequest(`"state_init" is not a StateInit: ${e.message}`);
            }
        }
        const message = relaxedInternal({ to, value, bounce, body, init });
        return send(() => wallet.sendMessages([message], SendMode.PAY_GAS_SEPARATELY));
    },

    async send_external(params) {
        const message = parseCell(param(params, 'boc'), 'boc');
        return send(() => blockchain.sendMessage(message));
    },

    async deploy(params) {
        const wallet = walletFor(params);
        const code = parseCell(param(params, 'code'), 'code');
        const data = parseCell(param(params, 'data'), 'data');
        const value = parseNanotons(param(params, 'value'), 'value');
        const init = { code, data };
        const stateInit = beginCell().store(storeStateInit(init)).endCell();
        const address = new Address(0, stateInit.hash());
        const message = relaxedInternal({ to: address, value, bounce: false, init, body: beginCell().endCell() });
        const sent = await send(() => wallet.sendMessages([message], SendMode.PAY_GAS_SEPARATELY));
        return { address: raw(address), ...sent };
    },

    async account(params) {
        const address = parseAddress(param(params, 'address'), 'address');
        return accountJson(address, await blockchain.getContract(address));
    },

    async run_get_method(params) {
        const address = parseAddress(param(params, 'address'), 'address');
        const method = param(params, 'method');
        if (typeof method !== 'string' && !Number.isSafeInteger(method)) throw badRequest('"method" must be a name or an id');
        const stackIn = optional(params, 'stack') ?? [];
        if (!Array.isArray(stackIn)) throw badRequest('"stack" must be an array');
        const stack = stackIn.map((x, i) => parseStackItem(x, `stack.${i}`));
        const contract = await blockchain.getContract(address);
        if (contract.accountState?.type !== 'active') {
            throw new RequestError('account_not_active', `account ${raw(address)} is not active`);
        }
        try {
            const res = await blockchain.runGetMethod(address, method, stack);
            return { exit_code: res.exitCode, gas_used: res.gasUsed.toString(), stack: res.stack.map(stackItemJson) };
        } catch (e) {
            if (e instanceof GetMethodError) {
                throw new RequestError('get_method_failed', `get-method ${method} exited with ${e.exitCode}`, { exit_code: e.exitCode });
            }
            throw new RequestError('get_method_failed', e.message ?? String(e));
        }
    },

    async transactions(params) {
        const address = parseAddress(param(params, 'address'), 'address');
        const limit = optional(params, 'limit') ?? 20;
        if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw badRequest('"limit" must be 1..1000');
        const txs = await blockchain.getTransactions(address, { limit });
        return { transactions: txs.map(transactionJson) };
    },

    async snapshot() {
        const id = nextSnapshotId++;
        snapshots.set(id, { chain: blockchain.snapshot(), seqno, wallets: new Map(wallets) });
        return { snapshot: id };
    },

    async restore(params) {
        const id = param(params, 'snapshot');
        const saved = snapshots.get(id);
        if (!saved) throw new RequestError('unknown_snapshot', `no snapshot ${JSON.stringify(id)}`);
        await blockchain.loadFrom(saved.chain);
        seqno = saved.seqno;
        wallets.clear();
        for (const [k, v] of saved.wallets) wallets.set(k, v);
        return { now: blockchain.now, seqno };
    },

    async shutdown() {
        setImmediate(() => process.exit(0));
        return {};
    },
};

// ---------------------------------------------------------------------------------------------
// Request loop

function stdoutReply(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

async function handle(line, reply) {
    let request;
    try {
        request = JSON.parse(line);
    } catch (e) {
        reply({ id: null, error: { code: 'bad_request', message: `not JSON: ${e.message}` } });
        return;
    }
    const id = request?.id ?? null;
    if (!Number.isSafeInteger(id)) {
        reply({ id: null, error: { code: 'bad_request', message: '"id" must be an integer' } });
        return;
    }
    const method = methods[request.method];
    if (typeof request.method !== 'string' || !Object.hasOwn(methods, request.method)) {
        reply({ id, error: { code: 'unknown_method', message: `unknown method ${JSON.stringify(request.method)}` } });
        return;
    }
    try {
        reply({ id, result: await method(request.params ?? {}) });
    } catch (e) {
        if (e instanceof RequestError) {
            reply({ id, error: { code: e.code, message: e.message, ...e.extra } });
        } else {
            process.stderr.write(`sidecar: ${request.method} failed: ${e?.stack ?? e}\n`);
            reply({ id, error: { code: 'internal', message: e?.message ?? String(e) } });
        }
    }
}

/** One queue for every source of requests: the sandbox handles one at a time. */
let queue = Promise.resolve();

function serveLines(input, reply) {
    const lines = createInterface({ input, crlfDelay: Infinity });
    lines.on('line', (line) => {
        if (line.trim() === '') return;
        queue = queue.then(() => handle(line, reply));
    });
    return lines;
}

const readyLine = { event: 'ready', protocol: PROTOCOL_VERSION, node: process.version, now: blockchain.now };

async function listen(spec) {
    const at = spec.lastIndexOf(':');
    const port = Number(spec.slice(at + 1));
    const host = spec.slice(0, at).replace(/^\[|\]$/g, '');
    if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
        throw new Error(`COCOON_SIDECAR_LISTEN must be host:port, not ${JSON.stringify(spec)}`);
    }
    const server = createServer((socket) => {
        socket.setNoDelay(true);
        socket.on('error', (e) => process.stderr.write(`sidecar: connection error: ${e.message}\n`));
        const reply = (obj) => {
            if (!socket.destroyed) socket.write(JSON.stringify(obj) + '\n');
        };
        reply({ ...readyLine, now: blockchain.now });
        serveLines(socket, reply);
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, resolve);
    });
    const bound = server.address();
    const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
    return `${shown}:${bound.port}`;
}

const listenSpec = process.env.COCOON_SIDECAR_LISTEN;
let listening = null;
if (listenSpec) {
    try {
        listening = await listen(listenSpec);
    } catch (e) {
        process.stderr.write(`sidecar: cannot listen on ${listenSpec}: ${e.message}\n`);
        process.exit(2);
    }
}

const stdinLines = serveLines(process.stdin, stdoutReply);
stdinLines.on('close', () => {
    queue.then(() => process.exit(0));
});

stdoutReply(listening ? { ...readyLine, listen: listening } : readyLine);
