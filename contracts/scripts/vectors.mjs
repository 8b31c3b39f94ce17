// Cross-implementation test vectors for the Rust crate cocoon-ton (crates/ton).
//
// Everything here is computed with @ton/core and @ton/crypto (the libraries the sandbox tests
// use) and with the contracts themselves running in @ton/sandbox, then written as JSON to
// crates/ton/tests/data/vectors.json, which `cargo test -p cocoon-ton` checks without node.
// The output is deterministic: fixed keys and seeds, a fixed sandbox clock, no randomness.
//
//   node scripts/vectors.mjs            write crates/ton/tests/data/vectors.json
//   node scripts/vectors.mjs --check    fail if the committed file differs from a fresh run
//   node scripts/vectors.mjs --stdout   print instead of writing
//
// With TON_TON_DIR pointing at an installed @ton/ton (a directory holding its package.json),
// the wallet vectors are also checked against @ton/ton's own wallet classes; without it those
// extra assertions are skipped (the vectors are the same either way).
import {
    Address,
    beginCell,
    Cell,
    contractAddress,
    external,
    internal,
    storeMessage,
    storeMessageRelaxed,
} from '@ton/core';
import { keyPairFromSeed, sign } from '@ton/crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
    addressOf,
    clientData,
    codes,
    defaultParams,
    Op,
    opBody,
    paramsCell,
    paramsCoreCell,
    proxyData,
    rootData,
    signedBody,
    TON,
    voucherPayload,
    workerData,
} from '../tests/helpers/layout.mjs';
import { GAS, setupNetwork } from '../tests/helpers/network.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const outFile = path.join(repoRoot, 'crates', 'ton', 'tests', 'data', 'vectors.json');
const walletCodeDir = path.join(repoRoot, 'crates', 'ton', 'src', 'wallet');

// ---------------------------------------------------------------------------------------------
// Helpers

const hex = (buf) => Buffer.from(buf).toString('hex');
const hashOf = (cell) => hex(cell.hash());
const boc = (cell) => cell.toBoc({ idx: false, crc32: true }).toString('base64');
const raw = (address) => address.toRawString();
const seed = (byte) => Buffer.alloc(32, byte);
const u256 = (buf) => BigInt('0x' + hex(buf));

/** A bigint as text: signed hex for 257-bit stack integers, decimal elsewhere. */
function stackInt(v) {
    return v < 0n ? '-0x' + (-v).toString(16) : '0x' + v.toString(16);
}

function jsonReplacer(_key, value) {
    return typeof value === 'bigint' ? value.toString() : value;
}

// ---------------------------------------------------------------------------------------------
// Cells built from a small op list that the Rust test replays with its own builder.

const cellVectors = [];
const cellsByName = new Map();

function applyOps(ops) {
    const b = beginCell();
    for (const op of ops) {
        switch (op[0]) {
            case 'bit':
                b.storeBit(op[1] === 1);
                break;
            case 'uint':
                b.storeUint(BigInt(op[2]), op[1]);
                break;
            case 'int':
                b.storeInt(BigInt(op[2]), op[1]);
                break;
            case 'coins':
                b.storeCoins(BigInt(op[1]));
                break;
            case 'address':
                b.storeAddress(Address.parseRaw(op[1]));
                break;
            case 'address_none':
                b.storeAddress(null);
                break;
            case 'bytes':
                b.storeBuffer(Buffer.from(op[1], 'hex'));
                break;
            case 'bits': {
                const bytes = Buffer.from(op[1], 'hex');
                for (let i = 0; i < op[2]; i++) b.storeBit((bytes[i >> 3] >> (7 - (i & 7))) & 1);
                break;
            }
            case 'ref':
                b.storeRef(cellsByName.get(op[1]));
                break;
            case 'text':
                b.storeStringTail(op[1]);
                break;
            default:
                throw new Error(`unknown op ${op[0]}`);
        }
    }
    return b.endCell();
}

function cellVector(name, ops) {
    const cell = applyOps(ops);
    cellsByName.set(name, cell);
    cellVectors.push({ name, ops, hash: hashOf(cell), boc: boc(cell), bocIdx: cell.toBoc({ idx: true, crc32: false }).toString('base64') });
}

const A = '0:' + 'a5'.repeat(32);
const B = '-1:' + '3c'.repeat(32);
const ZERO = '0:' + '00'.repeat(32);

cellVector('empty', []);
cellVector('one_bit', [['bit', 1]]);
cellVector('seven_bits', [['uint', 7, '93']]);
cellVector('byte', [['uint', 8, '255']]);
cellVector('nine_bits', [['uint', 9, '257']]);
cellVector('ints', [['int', 7, '-3'], ['int', 64, '-9223372036854775808'], ['int', 1, '-1'], ['int', 128, '170141183460469231731687303715884105727']]);
cellVector('uints', [['uint', 64, '18446744073709551615'], ['uint', 128, '340282366920938463463374607431768211455'], ['uint', 1, '0']]);
cellVector('coins', [['coins', '0'], ['coins', '1'], ['coins', '255'], ['coins', '256'], ['coins', '1000000000'], ['coins', (2n ** 120n - 1n).toString()]]);
cellVector('addresses', [['address', A], ['address', B], ['address_none'], ['address', ZERO]]);
cellVector('bits_unaligned', [['bit', 1], ['bytes', 'deadbeef'], ['bits', 'f0', 5]]);
cellVector('full', [['bits', 'ff'.repeat(128), 1023]]);
cellVector('leaf', [['uint', 32, '3735928559']]);
cellVector('with_refs', [['uint', 5, '3'], ['ref', 'leaf'], ['ref', 'one_bit'], ['ref', 'empty'], ['ref', 'leaf']]);
cellVector('nested', [['bit', 0], ['ref', 'with_refs'], ['ref', 'leaf']]);
cellVector('text_short', [['uint', 32, '1'], ['text', '10.0.0.1:11002']]);
cellVector('text_long', [['text', 'x'.repeat(127) + 'y'.repeat(127) + 'z'.repeat(30)]]);
{
    // a deep chain: 300 cells, each referencing the previous one
    let c = beginCell().endCell();
    for (let i = 0; i < 300; i++) c = beginCell().storeUint(i, 16).storeRef(c).endCell();
    cellsByName.set('chain_300', c);
    cellVectors.push({ name: 'chain_300', ops: null, hash: hashOf(c), boc: boc(c), bocIdx: c.toBoc({ idx: true, crc32: false }).toString('base64') });
}

// ---------------------------------------------------------------------------------------------
// Addresses in every text form.

function addressVector(rawText) {
    const a = Address.parseRaw(rawText);
    const forms = {};
    for (const bounceable of [true, false]) {
        for (const testOnly of [false, true]) {
            const key = `${bounceable ? 'bounceable' : 'non_bounceable'}_${testOnly ? 'testnet' : 'mainnet'}`;
            forms[key] = {
                url: a.toString({ bounceable, testOnly, urlSafe: true }),
                std: a.toString({ bounceable, testOnly, urlSafe: false }),
            };
        }
    }
    return { raw: raw(a), forms };
}

const addressVectors = [A, B, ZERO, '0:' + '0123456789abcdef'.repeat(4)].map(addressVector);

// ---------------------------------------------------------------------------------------------
// Contracts: codes, params, initial data and addresses for fixed owners and keys.

const proxyKeys = keyPairFromSeed(seed(7));
const otherKeys = keyPairFromSeed(seed(9));
const params = defaultParams();

function paramsJson(p) {
    return {
        structVersion: p.structVersion,
        paramsVersion: p.paramsVersion,
        uniqueId: p.uniqueId,
        isTest: p.isTest,
        pricePerToken: p.pricePerToken,
        workerFeePerToken: p.workerFeePerToken,
        promptMultiplier: p.promptMultiplier,
        cachedMultiplier: p.cachedMultiplier,
        completionMultiplier: p.completionMultiplier,
        reasoningMultiplier: p.reasoningMultiplier,
        proxyDelayBeforeClose: p.proxyDelayBeforeClose,
        clientDelayBeforeClose: p.clientDelayBeforeClose,
        minProxyStake: p.minProxyStake,
        minClientStake: p.minClientStake,
    };
}

const rootOwner = Address.parseRaw('0:' + '11'.repeat(32));
const proxyOwner = Address.parseRaw('0:' + '22'.repeat(32));
const clientOwner = Address.parseRaw('0:' + '33'.repeat(32));
const workerOwner = Address.parseRaw('0:' + '44'.repeat(32));

const rootDataCell = rootData(rootOwner, params);
const rootAddress = addressOf(codes.root, rootDataCell);
const proxyDataCell = proxyData({ owner: proxyOwner, publicKey: proxyKeys.publicKey, root: rootAddress, params });
const proxyAddress = addressOf(codes.proxy, proxyDataCell);
const clientDataCell = clientData({ owner: clientOwner, proxyContract: proxyAddress, publicKey: proxyKeys.publicKey, params });
const workerDataCell = workerData({ owner: workerOwner, proxyContract: proxyAddress, publicKey: proxyKeys.publicKey, params });

const contractsVectors = {
    codeHashes: Object.fromEntries(['root', 'proxy', 'client', 'worker'].map((n) => [n, hashOf(codes[n])])),
    params: paramsJson(params),
    paramsCoreHash: hashOf(paramsCoreCell(params)),
    paramsCoreBoc: boc(paramsCoreCell(params)),
    paramsHash: hashOf(paramsCell(params)),
    proxyPublicKey: hex(proxyKeys.publicKey),
    root: { owner: raw(rootOwner), dataHash: hashOf(rootDataCell), address: raw(rootAddress) },
    proxy: { owner: raw(proxyOwner), root: raw(rootAddress), dataHash: hashOf(proxyDataCell), address: raw(proxyAddress) },
    client: {
        owner: raw(clientOwner),
        proxyContract: raw(proxyAddress),
        dataHash: hashOf(clientDataCell),
        address: raw(addressOf(codes.client, clientDataCell)),
    },
    worker: {
        owner: raw(workerOwner),
        proxyContract: raw(proxyAddress),
        dataHash: hashOf(workerDataCell),
        address: raw(addressOf(codes.worker, workerDataCell)),
    },
    // the same children under another proxy key and another parameter set
    otherKeyClient: raw(
        addressOf(codes.client, clientData({ owner: clientOwner, proxyContract: proxyAddress, publicKey: otherKeys.publicKey, params })),
    ),
    otherKeyPublicKey: hex(otherKeys.publicKey),
};

// ---------------------------------------------------------------------------------------------
// Message bodies with fixed inputs.

const excessesTo = Address.parseRaw('0:' + '55'.repeat(32));
const HASH1 = '0x' + 'ab'.repeat(32);
const HASH2 = '0x' + 'cd'.repeat(32);
const messageVectors = [];

function msg(name, fields, cell) {
    messageVectors.push({ name, fields, hash: hashOf(cell), boc: boc(cell) });
}

msg('client_top_up', { queryId: 1, amount: 5n * TON, sendExcessesTo: raw(excessesTo) }, opBody(Op.clientTopUp, 1n).storeCoins(5n * TON).storeAddress(excessesTo).endCell());
msg('client_register', { queryId: 2, nonce: 0xdeadbeefn }, opBody(Op.clientRegister, 2n).storeUint(0xdeadbeefn, 64).endCell());
msg('client_change_secret_hash', { queryId: 3, secretHash: HASH1 }, opBody(Op.clientChangeSecretHash, 3n).storeUint(BigInt(HASH1), 256).endCell());
msg('client_increase_stake', { queryId: 4, newStake: 4n * TON }, opBody(Op.clientIncreaseStake, 4n).storeCoins(4n * TON).endCell());
msg('client_withdraw', { queryId: 5 }, opBody(Op.clientWithdraw, 5n).endCell());
msg('client_request_refund', { queryId: 6 }, opBody(Op.clientRequestRefund, 6n).endCell());
msg('worker_register', { queryId: 7 }, opBody(Op.workerRegister, 7n).endCell());
msg('proxy_payout', { queryId: 8 }, opBody(Op.proxyPayout, 8n).endCell());
msg('proxy_increase_stake', { queryId: 9, amount: 10n * TON }, opBody(Op.proxyIncreaseStake, 9n).storeCoins(10n * TON).endCell());
msg('proxy_owner_close', { queryId: 10 }, opBody(Op.proxyOwnerClose, 10n).endCell());
{
    const anchorSig = sign(
        beginCell().storeUint(Op.proxySaveState, 32).storeAddress(proxyAddress).storeUint(5, 32).storeUint(BigInt(HASH2), 256).endCell().hash(),
        proxyKeys.secretKey,
    );
    const anchor = () => opBody(Op.doNotProcess, 11n).storeUint(Op.proxySaveState, 32).storeUint(5, 32).storeUint(BigInt(HASH2), 256);
    msg('proxy_save_state', { queryId: 11, seqno: 5, stateHash: HASH2, signature: null }, anchor().endCell());
    msg(
        'proxy_save_state_signed',
        { queryId: 11, seqno: 5, stateHash: HASH2, signature: hex(anchorSig), proxyContract: raw(proxyAddress) },
        anchor().storeRef(beginCell().storeBuffer(anchorSig).endCell()).endCell(),
    );
    msg('proxy_note', { queryId: 12, restBits: '11111111', restLen: 32 }, opBody(Op.doNotProcess, 12n).storeUint(0x11111111, 32).endCell());
}
msg(
    'client_proxy_request',
    { queryId: 13, kind: 1, amount: 2n * TON, flags: 1, owner: raw(clientOwner), sendExcessesTo: raw(excessesTo) },
    beginCell().storeUint(Op.clientProxyRequest, 32).storeUint(13n, 64).storeUint(1, 8).storeCoins(2n * TON).storeUint(1, 8).storeAddress(clientOwner).storeAddress(excessesTo).endCell(),
);
msg(
    'worker_proxy_request',
    { queryId: 14, kind: 3, tokens: 123456n, flags: 2, owner: raw(workerOwner), sendExcessesTo: raw(excessesTo) },
    beginCell().storeUint(Op.workerProxyRequest, 32).storeUint(14n, 64).storeUint(3, 8).storeUint(123456n, 64).storeUint(2, 8).storeAddress(workerOwner).storeAddress(excessesTo).endCell(),
);
msg('excesses', { queryId: 15 }, opBody(Op.excesses, 15n).endCell());
msg('payout', { queryId: 16 }, opBody(Op.payout, 16n).endCell());
for (const [name, op] of [
    ['root_add_proxy_image', Op.rootAddProxyImage],
    ['root_remove_proxy_image', Op.rootRemoveProxyImage],
    ['root_add_worker_image', Op.rootAddWorkerImage],
    ['root_remove_worker_image', Op.rootRemoveWorkerImage],
    ['root_add_model', Op.rootAddModel],
    ['root_remove_model', Op.rootRemoveModel],
]) {
    msg(name, { queryId: 17, hash: HASH1 }, opBody(op, 17n).storeUint(BigInt(HASH1), 256).endCell());
}
const endpointCell = (s) => beginCell().storeStringTail(s).endCell();
msg('root_register_proxy', { queryId: 18, endpoint: '10.0.0.2:11002 10.0.0.2:11001' }, opBody(Op.rootRegisterProxy, 18n).storeRef(endpointCell('10.0.0.2:11002 10.0.0.2:11001')).endCell());
msg('root_update_proxy', { queryId: 19, seqno: 3, endpoint: 'h'.repeat(200) }, opBody(Op.rootUpdateProxy, 19n).storeUint(3, 32).storeRef(endpointCell('h'.repeat(200))).endCell());
msg('root_remove_proxy', { queryId: 20, seqno: 3 }, opBody(Op.rootRemoveProxy, 20n).storeUint(3, 32).endCell());
msg('root_update_params', { queryId: 21, params: paramsJson(params) }, opBody(Op.rootUpdateParams, 21n).storeRef(paramsCell(params)).endCell());
msg('root_change_owner', { queryId: 22, newOwner: raw(proxyOwner) }, opBody(Op.rootChangeOwner, 22n).storeAddress(proxyOwner).endCell());
msg('client_registered_log', { nonce: 0xdeadbeefn, owner: raw(clientOwner) }, beginCell().storeUint(0xdeadbeefn, 64).storeAddress(clientOwner).endCell());

// ---------------------------------------------------------------------------------------------
// Vouchers signed by the proxy key.

const clientAddress = addressOf(codes.client, clientDataCell);
const workerAddress = addressOf(codes.worker, workerDataCell);
const voucherVectors = [];
for (const [kind, op, target, tokens, queryId] of [
    ['client_charge', Op.clientChargeSigned, clientAddress, 300000n, 1n],
    ['client_grant_refund', Op.clientGrantRefundSigned, clientAddress, 300001n, 2n],
    ['worker_payout', Op.workerPayoutSigned, workerAddress, 45300000n, 3n],
    ['worker_last_payout', Op.workerLastPayoutSigned, workerAddress, 18446744073709551615n, 18446744073709551615n],
    ['proxy_close', Op.proxyCloseSigned, proxyAddress, 0n, 5n],
    ['proxy_close_complete', Op.proxyCloseCompleteSigned, proxyAddress, 0n, 0n],
]) {
    const payload = voucherPayload({ op, queryId, tokens, target });
    const signature = sign(payload.hash(), proxyKeys.secretKey);
    const body = signedBody({ op, queryId, tokens, target, excessesTo, secretKey: proxyKeys.secretKey });
    voucherVectors.push({
        kind,
        op: op.toString(16).padStart(8, '0'),
        queryId,
        tokens,
        target: raw(target),
        sendExcessesTo: raw(excessesTo),
        payloadHash: hashOf(payload),
        signature: hex(signature),
        bodyHash: hashOf(body),
        bodyBoc: boc(body),
    });
}

// ---------------------------------------------------------------------------------------------
// Wallets V4R2 and V5R1, built from @ton/core primitives (cross-checked against @ton/ton when
// TON_TON_DIR is set).

const walletCode = {
    v4r2: Cell.fromBoc(Buffer.from(fs.readFileSync(path.join(walletCodeDir, 'v4r2.code.b64'), 'utf-8').trim(), 'base64'))[0],
    v5r1: Cell.fromBoc(Buffer.from(fs.readFileSync(path.join(walletCodeDir, 'v5r1.code.b64'), 'utf-8').trim(), 'base64'))[0],
};

function v4Data(publicKey, walletId) {
    return beginCell().storeUint(0, 32).storeUint(walletId, 32).storeBuffer(publicKey).storeBit(0).endCell();
}

function v5WalletId(globalId, workchain, subwallet) {
    const context = beginCell().storeUint(1, 1).storeInt(workchain, 8).storeUint(0, 8).storeUint(subwallet, 15).endCell().beginParse().loadInt(32);
    return BigInt(globalId) ^ BigInt(context);
}

function v5Data(publicKey, walletId) {
    return beginCell().storeUint(1, 1).storeUint(0, 32).storeInt(walletId, 32).storeBuffer(publicKey).storeBit(0).endCell();
}

function relaxed(m) {
    return beginCell().store(storeMessageRelaxed(m)).endCell();
}

function v4Body(keys, walletId, seqno, validUntil, messages, mode) {
    const b = beginCell().storeUint(walletId, 32).storeUint(validUntil, 32).storeUint(seqno, 32).storeUint(0, 8);
    for (const m of messages) b.storeUint(mode, 8).storeRef(relaxed(m));
    const signature = sign(b.endCell().hash(), keys.secretKey);
    return beginCell().storeBuffer(signature).storeBuilder(b).endCell();
}

function v5Body(keys, walletId, seqno, validUntil, messages, mode) {
    let list = null;
    for (const m of messages) {
        list = beginCell()
            .storeRef(list ?? beginCell().endCell())
            .storeUint(0x0ec3c86d, 32)
            .storeUint(mode | 2, 8)
            .storeRef(relaxed(m))
            .endCell();
    }
    const b = beginCell().storeUint(0x7369676e, 32).storeInt(walletId, 32).storeUint(validUntil, 32).storeUint(seqno, 32).storeMaybeRef(list).storeBit(0);
    const signature = sign(b.endCell().hash(), keys.secretKey);
    return beginCell().storeBuilder(b).storeBuffer(signature).endCell();
}

function externalFor(address, init, body) {
    return beginCell().store(storeMessage(external({ to: address, init: init ?? undefined, body }))).endCell();
}

function normalizedHash(address, body) {
    return hashOf(
        beginCell()
            .storeUint(2, 2)
            .storeUint(0, 2)
            .storeAddress(address)
            .storeCoins(0)
            .storeBit(0)
            .storeBit(1)
            .storeRef(body)
            .endCell(),
    );
}

const transferMessages = [
    {
        dest: raw(clientAddress),
        value: 5n * TON + GAS,
        bounce: true,
        body: 'client_top_up',
        stateInit: 'client',
    },
    {
        dest: raw(excessesTo),
        value: TON / 10n,
        bounce: false,
        body: null,
        stateInit: null,
    },
];

function coreMessages(list) {
    const inits = { client: { code: codes.client, data: clientDataCell } };
    const bodies = Object.fromEntries(messageVectors.map((v) => [v.name, Cell.fromBoc(Buffer.from(v.boc, 'base64'))[0]]));
    return list.map((m) =>
        internal({
            to: Address.parseRaw(m.dest),
            value: m.value,
            bounce: m.bounce,
            body: m.body ? bodies[m.body] : undefined,
            init: m.stateInit ? inits[m.stateInit] : undefined,
        }),
    );
}

let tonTon = null;
let tonTonCore = null;
if (process.env.TON_TON_DIR) {
    const req = createRequire(path.join(path.resolve(process.env.TON_TON_DIR), 'package.json'));
    tonTon = req('@ton/ton');
    // @ton/ton brings its own copy of @ton/core: hand it values built with that copy
    tonTonCore = createRequire(req.resolve('@ton/ton'))('@ton/core');
}

/** The transfer messages rebuilt with @ton/ton's copy of @ton/core. */
function theirMessages(list) {
    const conv = (cell) => tonTonCore.Cell.fromBoc(cell.toBoc())[0];
    const inits = { client: { code: conv(codes.client), data: conv(clientDataCell) } };
    const bodies = Object.fromEntries(messageVectors.map((v) => [v.name, tonTonCore.Cell.fromBoc(Buffer.from(v.boc, 'base64'))[0]]));
    return list.map((m) =>
        tonTonCore.internal({
            to: tonTonCore.Address.parseRaw(m.dest),
            value: m.value,
            bounce: m.bounce,
            body: m.body ? bodies[m.body] : undefined,
            init: m.stateInit ? inits[m.stateInit] : undefined,
        }),
    );
}

const walletVectors = [];
for (const seedByte of [1, 2]) {
    const keys = keyPairFromSeed(seed(seedByte));
    const variants = [
        { version: 'v4r2', walletId: 698983191n },
        { version: 'v4r2', walletId: 1n },
        { version: 'v5r1', network: -239, subwallet: 0 },
        { version: 'v5r1', network: -3, subwallet: 0 },
        { version: 'v5r1', network: -239, subwallet: 1 },
    ];
    for (const v of variants) {
        const walletId = v.version === 'v4r2' ? v.walletId : v5WalletId(v.network, 0, v.subwallet);
        const data = v.version === 'v4r2' ? v4Data(keys.publicKey, walletId) : v5Data(keys.publicKey, walletId);
        const init = { code: walletCode[v.version], data };
        const address = contractAddress(0, init);
        const transfers = [];
        for (const [seqno, messages] of [
            [0, transferMessages],
            [5, transferMessages.slice(1)],
            [6, []],
        ]) {
            const validUntil = 1_700_000_600;
            const core = coreMessages(messages);
            const body =
                v.version === 'v4r2'
                    ? v4Body(keys, walletId, seqno, validUntil, core, 3)
                    : v5Body(keys, walletId, seqno, validUntil, core, 3);
            const ext = externalFor(address, seqno === 0 ? init : null, body);
            transfers.push({
                seqno,
                validUntil,
                mode: 3,
                messages,
                bodyHash: hashOf(body),
                externalHash: hashOf(ext),
                externalBoc: boc(ext),
                normalizedHash: normalizedHash(address, body),
            });
            if (tonTon) {
                const wallet =
                    v.version === 'v4r2'
                        ? tonTon.WalletContractV4.create({ workchain: 0, publicKey: keys.publicKey, walletId: Number(walletId) })
                        : tonTon.WalletContractV5R1.create({
                              publicKey: keys.publicKey,
                              walletId: { networkGlobalId: v.network, context: { workchain: 0, walletVersion: 'v5r1', subwalletNumber: v.subwallet } },
                          });
                if (wallet.address.toRawString() !== raw(address)) throw new Error(`@ton/ton disagrees on the ${v.version} address`);
                const theirs = wallet.createTransfer({ seqno, secretKey: keys.secretKey, messages: theirMessages(messages), sendMode: 3, timeout: validUntil });
                if (hex(theirs.hash()) !== hashOf(body)) throw new Error(`@ton/ton disagrees on the ${v.version} transfer body (seqno ${seqno})`);
            }
        }
        walletVectors.push({
            version: v.version,
            seed: hex(seed(seedByte)),
            publicKey: hex(keys.publicKey),
            walletId: BigInt.asUintN(32, walletId),
            network: v.network ?? null,
            subwallet: v.subwallet ?? null,
            codeHash: hashOf(walletCode[v.version]),
            dataHash: hashOf(data),
            address: raw(address),
            transfers,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The contracts themselves in the sandbox: data cells, get-method stacks, messages they sent.

function stackJson(items) {
    return items.map((it) => {
        switch (it.type) {
            case 'int':
                return { type: 'int', value: stackInt(it.value) };
            case 'null':
                return { type: 'null' };
            case 'cell':
            case 'slice':
            case 'builder':
                return { type: it.type, boc: boc(it.cell) };
            default:
                throw new Error(`unsupported stack item ${it.type}`);
        }
    });
}

async function sandboxVectors() {
    const net = await setupNetwork();
    const { chain } = net;
    const owner = await chain.treasury('client-owner');
    const wOwner = await chain.treasury('worker-owner');
    const stranger = await chain.treasury('stranger');

    // the root gets entries in every list
    const rootSend = (body) => net.root.sendBody(net.rootOwner.getSender(), TON / 10n, body);
    await rootSend(opBody(Op.rootAddProxyImage, 1n).storeUint(BigInt(HASH1), 256));
    await rootSend(opBody(Op.rootAddProxyImage, 2n).storeUint(7n, 256));
    await rootSend(opBody(Op.rootAddWorkerImage, 3n).storeUint(BigInt(HASH2), 256));
    await rootSend(opBody(Op.rootAddModel, 4n).storeUint(0x1234n, 256));
    await rootSend(opBody(Op.rootRegisterProxy, 5n).storeRef(endpointCell('10.0.0.1:11002')));
    await rootSend(opBody(Op.rootRegisterProxy, 6n).storeRef(endpointCell('10.0.0.2:11002 10.0.0.2:11001')));
    await rootSend(opBody(Op.rootRegisterProxy, 7n).storeRef(endpointCell('e'.repeat(150))));
    await rootSend(opBody(Op.rootRemoveProxy, 8n).storeUint(1, 32));

    // a client tops up, is charged, registers a nonce and sets its secret hash
    const client = net.clientFor(owner);
    const topUp = await net.topUp(client, owner, 5n * TON);
    await net.submit(client, net.voucher(Op.clientChargeSigned, client, 300_000n));
    const register = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientRegister, 9n).storeUint(0xdeadbeefn, 64));
    await client.sendBody(owner.getSender(), GAS, opBody(Op.clientChangeSecretHash, 10n).storeUint(BigInt(HASH1), 256));

    // a worker is paid
    const worker = net.workerFor(wOwner);
    const payout = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 200_000n));

    // the owner anchors the ledger
    await net.proxy.sendBody(
        net.proxyOwner.getSender(),
        GAS,
        opBody(Op.doNotProcess, 11n).storeUint(Op.proxySaveState, 32).storeUint(3, 32).storeUint(BigInt(HASH2), 256),
    );

    const dataOf = async (address) => {
        const st = (await chain.getContract(address)).accountState;
        if (!st || st.type !== 'active') throw new Error(`${address} is not active`);
        return boc(st.state.data);
    };
    const stackOf = async (address, method, args = []) => stackJson((await chain.runGetMethod(address, method, args)).stack);

    // bodies the contracts sent, as observed in the transactions
    const sentBodies = (txs, op) =>
        txs.flatMap((tx) =>
            tx.outMessages
                .values()
                .filter((m) => m.info.type === 'internal' && m.body.bits.length >= 32 && m.body.beginParse().preloadUint(32) === op)
                .map((m) => boc(m.body)),
        );
    const logs = register.transactions.flatMap((tx) => tx.outMessages.values().filter((m) => m.info.type === 'external-out'));
    if (logs.length !== 1) throw new Error('expected one register log');

    const newcomer = stranger.address;
    return {
        now: chain.now,
        proxyPublicKey: hex(net.proxyKeys.publicKey),
        params: paramsJson(net.params),
        rootOwner: raw(net.rootOwner.address),
        proxyOwner: raw(net.proxyOwner.address),
        root: {
            address: raw(net.root.address),
            data: await dataOf(net.root.address),
            version: (await chain.runGetMethod(net.root.address, 'get_version')).stackReader.readNumber(),
        },
        proxy: {
            address: raw(net.proxy.address),
            data: await dataOf(net.proxy.address),
            getter: await stackOf(net.proxy.address, 'get_proxy_data'),
            values: await net.proxyData(),
            clientAddressOfNewcomer: (await chain.runGetMethod(net.proxy.address, 'get_client_address', [{ type: 'slice', cell: beginCell().storeAddress(newcomer).endCell() }])).stackReader.readAddress().toRawString(),
            workerAddressOfNewcomer: (await chain.runGetMethod(net.proxy.address, 'get_worker_address', [{ type: 'slice', cell: beginCell().storeAddress(newcomer).endCell() }])).stackReader.readAddress().toRawString(),
            newcomer: raw(newcomer),
        },
        client: {
            owner: raw(owner.address),
            address: raw(client.address),
            data: await dataOf(client.address),
            getter: await stackOf(client.address, 'get_client_data'),
            values: await net.clientData(client),
        },
        worker: {
            owner: raw(wOwner.address),
            address: raw(worker.address),
            data: await dataOf(worker.address),
            getter: await stackOf(worker.address, 'get_worker_data'),
            values: await net.workerData(worker),
        },
        observed: {
            clientProxyRequests: sentBodies(topUp.transactions, Op.clientProxyRequest),
            workerProxyRequests: sentBodies(payout.transactions, Op.workerProxyRequest),
            payouts: sentBodies(payout.transactions, Op.payout),
            excesses: sentBodies(topUp.transactions, Op.excesses),
            registerLog: { body: boc(logs[0].body), destination: logs[0].info.dest.toString() },
        },
    };
}

function addressesToRaw(obj) {
    if (obj instanceof Address) return raw(obj);
    if (Array.isArray(obj)) return obj.map(addressesToRaw);
    if (obj && typeof obj === 'object' && !(obj instanceof Cell)) {
        return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, addressesToRaw(v)]));
    }
    return obj;
}

// ---------------------------------------------------------------------------------------------

async function main() {
    const corePkg = JSON.parse(fs.readFileSync(path.join(here, '..', 'node_modules', '@ton', 'core', 'package.json'), 'utf-8'));
    const vectors = {
        generator: 'contracts/scripts/vectors.mjs',
        tonCore: corePkg.version,
        cells: cellVectors,
        addresses: addressVectors,
        contracts: contractsVectors,
        messages: messageVectors,
        vouchers: voucherVectors,
        wallets: walletVectors,
        sandbox: addressesToRaw(await sandboxVectors()),
    };
    const text = JSON.stringify(vectors, jsonReplacer, 1) + '\n';
    const mode = process.argv[2];
    if (mode === '--stdout') {
        process.stdout.write(text);
    } else if (mode === '--check') {
        const committed = fs.readFileSync(outFile, 'utf-8');
        if (committed !== text) {
            console.error(`${path.relative(repoRoot, outFile)} is stale: run node scripts/vectors.mjs`);
            process.exit(1);
        }
        console.log('vectors up to date');
    } else {
        fs.mkdirSync(path.dirname(outFile), { recursive: true });
        fs.writeFileSync(outFile, text);
        console.log(`wrote ${path.relative(repoRoot, outFile)}${tonTon ? ' (wallets checked against @ton/ton)' : ''}`);
    }
}

main().catch((e) => {
    console.error(e.stack ?? e);
    process.exit(1);
});
