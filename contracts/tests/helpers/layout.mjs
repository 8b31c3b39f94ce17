// JS mirrors of the contracts' cell layouts (params, storages, messages, vouchers), used by the
// tests to deploy contracts and to build the messages a client, worker, proxy or owner sends.
import { Address, beginCell, Cell, contractAddress, Dictionary } from '@ton/core';
import { sign } from '@ton/crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const buildDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'build');

/** Code cell of a compiled contract (build/<name>.json, written by scripts/build.mjs). */
const codeCache = new Map();

export function loadCode(name) {
    if (codeCache.has(name)) return codeCache.get(name);
    const json = JSON.parse(fs.readFileSync(path.join(buildDir, `${name}.json`), 'utf-8'));
    const cell = Cell.fromBoc(Buffer.from(json.codeBoc64, 'base64'))[0];
    codeCache.set(name, cell);
    return cell;
}

/** Code cells, loaded on first use. */
export const codes = {
    get root() {
        return loadCode('root');
    },
    get proxy() {
        return loadCode('proxy');
    },
    get client() {
        return loadCode('client');
    },
    get worker() {
        return loadCode('worker');
    },
};

export const State = { normal: 0, closing: 1, closed: 2 };

export const Op = {
    clientTopUp: 0xf172e6c2,
    clientChargeSigned: 0xbb63ff93,
    clientGrantRefundSigned: 0xefd711e1,
    clientRegister: 0xc45f9f3b,
    clientChangeSecretHash: 0xa9357034,
    clientIncreaseStake: 0x6a1f6a60,
    clientWithdraw: 0xda068e78,
    clientRequestRefund: 0xfafa6cc1,
    workerPayoutSigned: 0xa040ad28,
    workerLastPayoutSigned: 0xf5f26a36,
    workerRegister: 0x26ed7f65,
    proxyPayout: 0x7610e6eb,
    proxyIncreaseStake: 0x9713f187,
    proxyOwnerClose: 0xb51d5a01,
    proxyCloseSigned: 0x636a4391,
    proxyCloseCompleteSigned: 0xe511abc7,
    proxySaveState: 0x53109c0f,
    clientProxyRequest: 0x65448ff4,
    workerProxyRequest: 0x4d725d2c,
    excesses: 0x2565934c,
    payout: 0xc59a7cd3,
    doNotProcess: 0x9a1247c0,
    rootAddProxyImage: 0xfba66403,
    rootRemoveProxyImage: 0xe1f49d33,
    rootAddWorkerImage: 0xfe7f06eb,
    rootRemoveWorkerImage: 0xd8bc64be,
    rootAddModel: 0x2334623f,
    rootRemoveModel: 0x14ac3dc7,
    rootRegisterProxy: 0xd72ccafb,
    rootUpdateProxy: 0x6d80f083,
    rootRemoveProxy: 0xb04b86a0,
    rootUpdateParams: 0xd7b8b0db,
    rootChangeOwner: 0xed26808e,
    logClientRegistered: 0x1ba02a0f,
};

export const Err = {
    unknownOp: 0xffff,
    notOwner: 401,
    wrongState: 402,
    badSignature: 403,
    wrongTarget: 404,
    wrongVoucherOp: 405,
    voucherNotNewer: 406,
    nothingToWithdraw: 407,
    tooEarly: 408,
    lowValue: 409,
    notAChild: 410,
    activeChildren: 411,
    stakeTooLow: 412,
    seqnoNotNewer: 413,
    invalidParams: 414,
    notFound: 415,
    alreadyRegistered: 416,
    nothingToPay: 417,
    wrongChain: 418,
    unknownRequest: 419,
};

export const TON = 1_000_000_000n;

/** A parameter set for tests: 1 token = 1000 nanoTON for clients, 800 to the worker. */
export function defaultParams(overrides = {}) {
    return {
        structVersion: 1,
        paramsVersion: 1,
        uniqueId: 42,
        isTest: true,
        pricePerToken: 1000n,
        workerFeePerToken: 800n,
        promptMultiplier: 10000,
        cachedMultiplier: 1000,
        completionMultiplier: 80000,
        reasoningMultiplier: 80000,
        proxyDelayBeforeClose: 2 * 86400,
        clientDelayBeforeClose: 86400,
        minProxyStake: 10n * TON,
        minClientStake: 1n * TON,
        ...overrides,
        proxyCode: overrides.proxyCode ?? codes.proxy,
        workerCode: overrides.workerCode ?? codes.worker,
        clientCode: overrides.clientCode ?? codes.client,
    };
}

/** The numeric parameters: what client and worker contracts keep. */
export function paramsCoreCell(p) {
    return beginCell()
        .storeUint(p.structVersion, 8)
        .storeUint(p.paramsVersion, 32)
        .storeUint(p.uniqueId, 32)
        .storeBit(p.isTest)
        .storeCoins(p.pricePerToken)
        .storeCoins(p.workerFeePerToken)
        .storeUint(p.promptMultiplier, 32)
        .storeUint(p.cachedMultiplier, 32)
        .storeUint(p.completionMultiplier, 32)
        .storeUint(p.reasoningMultiplier, 32)
        .storeUint(p.proxyDelayBeforeClose, 32)
        .storeUint(p.clientDelayBeforeClose, 32)
        .storeCoins(p.minProxyStake)
        .storeCoins(p.minClientStake)
        .endCell();
}

/** The full parameters: the core and the three contract codes, as the root and proxies keep them. */
export function paramsCell(p) {
    return beginCell().storeRef(paramsCoreCell(p)).storeRef(p.proxyCode).storeRef(p.workerCode).storeRef(p.clientCode).endCell();
}

// ---------------------------------------------------------------------------------------------
// Initial data of each contract.

export function rootData(owner, params) {
    const lists = beginCell()
        .storeBit(false) // proxy image hashes
        .storeBit(false) // worker image hashes
        .storeBit(false) // model hashes
        .storeBit(false) // registered proxies
        .storeUint(0, 32) // next proxy seqno
        .endCell();
    return beginCell().storeAddress(owner).storeUint(0, 32).storeRef(paramsCell(params)).storeRef(lists).endCell();
}

export function proxyData({ owner, publicKey, root, params }) {
    const identity = beginCell()
        .storeAddress(owner)
        .storeBuffer(publicKey, 32)
        .storeAddress(root)
        .storeRef(paramsCell(params))
        .endCell();
    return beginCell()
        .storeUint(State.normal, 2)
        .storeCoins(0) // earned
        .storeCoins(0) // stake
        .storeUint(0, 32) // unlock time
        .storeUint(0, 32) // active clients
        .storeUint(0, 32) // active workers
        .storeUint(0, 32) // saved seqno
        .storeUint(0, 256) // saved state hash
        .storeRef(identity)
        .endCell();
}

function childIdentity(owner, proxyContract, publicKey, params) {
    return beginCell()
        .storeAddress(owner)
        .storeAddress(proxyContract)
        .storeBuffer(publicKey, 32)
        .storeRef(paramsCoreCell(params))
        .endCell();
}

export function clientData({ owner, proxyContract, publicKey, params }) {
    return beginCell()
        .storeUint(State.normal, 2)
        .storeBit(false) // announced
        .storeCoins(0) // balance
        .storeCoins(params.minClientStake) // stake
        .storeUint(0, 64) // tokens used
        .storeUint(0, 32) // unlock time
        .storeUint(0, 256) // secret hash
        .storeRef(childIdentity(owner, proxyContract, publicKey, params))
        .endCell();
}

export function workerData({ owner, proxyContract, publicKey, params }) {
    return beginCell()
        .storeUint(State.normal, 2)
        .storeBit(false) // announced
        .storeUint(0, 64) // tokens paid
        .storeRef(childIdentity(owner, proxyContract, publicKey, params))
        .endCell();
}

export function addressOf(code, data) {
    return contractAddress(0, { code, data });
}

// ---------------------------------------------------------------------------------------------
// Signed vouchers: the proxy signs the representation hash of
// `op:32 | qid:64 | tokens:64 | target address`.

export function voucherPayload({ op, queryId = 0n, tokens = 0n, target }) {
    return beginCell().storeUint(op, 32).storeUint(queryId, 64).storeUint(tokens, 64).storeAddress(target).endCell();
}

/** `op | qid | send_excesses_to | signature:512 | ^payload`, signed with `secretKey`. */
export function signedBody({ op, queryId = 0n, tokens = 0n, target, excessesTo, secretKey, payloadOp }) {
    const payload = voucherPayload({ op: payloadOp ?? op, queryId, tokens, target });
    const signature = sign(payload.hash(), secretKey);
    return beginCell()
        .storeUint(op, 32)
        .storeUint(queryId, 64)
        .storeAddress(excessesTo)
        .storeBuffer(signature, 64)
        .storeRef(payload)
        .endCell();
}

// ---------------------------------------------------------------------------------------------
// Plain message bodies.

export function opBody(op, queryId = 0n) {
    return beginCell().storeUint(op, 32).storeUint(queryId, 64);
}

export function hashSetKeys(dictCell) {
    if (dictCell === null) return [];
    return Dictionary.loadDirect(Dictionary.Keys.BigUint(256), emptyValue, dictCell).keys();
}

const emptyValue = {
    serialize: () => {},
    parse: () => true,
};

export { Address, beginCell, Cell, Dictionary };
