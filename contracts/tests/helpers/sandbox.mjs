// Sandbox plumbing shared by the tests: a thin contract wrapper, transaction lookup and
// assertions on compute phases, message values and gas.
import assert from 'node:assert/strict';
import { Blockchain } from '@ton/sandbox';
import { Address, Cell, SendMode, TupleBuilder } from '@ton/core';

/** Any contract: send an arbitrary body, run any get-method. */
export class Deployed {
    constructor(address, init) {
        this.address = address;
        this.init = init;
    }

    static fromCode(code, data) {
        const init = { code, data };
        return new Deployed(contractAddressOf(init), init);
    }

    async sendBody(provider, via, value, body) {
        await provider.internal(via, {
            value,
            bounce: true,
            sendMode: SendMode.PAY_GAS_SEPARATELY,
            body: body instanceof Cell ? body : body.endCell(),
        });
    }

    async getStack(provider, name, args = []) {
        const tb = new TupleBuilder();
        for (const a of args) {
            if (typeof a === 'bigint' || typeof a === 'number') tb.writeNumber(a);
            else if (a instanceof Address) tb.writeAddress(a);
            else if (a instanceof Cell) tb.writeCell(a);
            else throw new Error(`unsupported get-method argument ${a}`);
        }
        const res = await provider.get(name, tb.build());
        return res.stack;
    }
}

import { contractAddress } from '@ton/core';
function contractAddressOf(init) {
    return contractAddress(0, init);
}

export async function newChain(now = 1_700_000_000) {
    const blockchain = await Blockchain.create();
    blockchain.now = now;
    return blockchain;
}

/** Compute-phase facts of a transaction (or null for a non-VM transaction). */
export function compute(tx) {
    const d = tx.description;
    if (d.type !== 'generic' || d.computePhase.type !== 'vm') return null;
    return { success: d.computePhase.success, exitCode: d.computePhase.exitCode, gasUsed: d.computePhase.gasUsed };
}

function opOf(msg) {
    if (!msg || !msg.body) return null;
    const s = msg.body.beginParse();
    if (s.remainingBits < 32) return null;
    return s.loadUint(32);
}

/** Transactions matching every given field: from, to (addresses), op (of the incoming body), success, exitCode. */
export function findTxs(txs, { from, to, op, success, exitCode, bounced } = {}) {
    return txs.filter((tx) => {
        const m = tx.inMessage;
        if (!m || m.info.type !== 'internal') return false;
        if (from && !m.info.src.equals(from)) return false;
        if (to && !m.info.dest.equals(to)) return false;
        if (bounced !== undefined && m.info.bounced !== bounced) return false;
        if (op !== undefined && opOf(m) !== op) return false;
        const c = compute(tx);
        const ok = c !== null && c.success && tx.description.actionPhase?.success !== false && !tx.description.aborted;
        if (success !== undefined && ok !== success) return false;
        if (exitCode !== undefined && (c === null || c.exitCode !== exitCode)) return false;
        return true;
    });
}

export function expectTx(txs, filter) {
    const found = findTxs(txs, filter);
    assert.ok(found.length > 0, `no transaction matches ${describe(filter)}; got:\n${summary(txs)}`);
    return found[0];
}

export function expectNoTx(txs, filter) {
    const found = findTxs(txs, filter);
    assert.equal(found.length, 0, `unexpected transaction matching ${describe(filter)}:\n${summary(txs)}`);
}

/** The refused transaction of `to` must fail with `exitCode`, leaving no outgoing message but a bounce. */
export function expectRefused(txs, to, exitCode) {
    const tx = expectTx(txs, { to, success: false });
    assert.equal(compute(tx).exitCode, exitCode, `exit code of the refused transaction:\n${summary(txs)}`);
    return tx;
}

/** Internal messages sent by a transaction. */
export function outMessages(tx) {
    return tx.outMessages.values().filter((m) => m.info.type === 'internal');
}

/** Value of the message `tx` sent to `dest` with body op `op` (exactly one must exist). */
export function sentValue(tx, dest, op = 0xc59a7cd3) {
    const msgs = outMessages(tx).filter((m) => m.info.dest.equals(dest) && opOf(m) === op);
    assert.equal(msgs.length, 1, `expected one message to ${dest} with op ${op.toString(16)}`);
    return msgs[0].info.value.coins;
}

/** A get-method result with addresses as strings, for deep comparisons. */
export function plain(obj) {
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, v instanceof Address ? v.toString() : v]));
}

function describe(filter) {
    return JSON.stringify(filter, (k, v) => (v instanceof Address ? v.toString() : typeof v === 'bigint' ? v.toString() : v));
}

export function summary(txs) {
    return txs
        .map((tx) => {
            const m = tx.inMessage;
            const c = compute(tx);
            const op = opOf(m);
            return `  ${m?.info.type === 'internal' ? m.info.src.toString().slice(0, 10) : 'ext'} -> ${m?.info.dest?.toString().slice(0, 10)} op=${
                op === null ? '-' : op.toString(16)
            } ${c ? `exit=${c.exitCode} gas=${c.gasUsed}` : 'no-vm'} action=${tx.description.actionPhase?.success}`;
        })
        .join('\n');
}
