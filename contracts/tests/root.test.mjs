// Root registry: owner-only updates, consistent parameters, get-methods that read everything.
import { test, describe, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell, Dictionary } from '@ton/core';
import { codes, defaultParams, Err, hashSetKeys, Op, opBody, paramsCell, rootData, TON } from './helpers/layout.mjs';
import { Deployed, expectRefused, expectTx, newChain } from './helpers/sandbox.mjs';

// The root only stores the child codes: any cells do for these tests.
const placeholderCodes = {
    proxyCode: beginCell().storeUint(1, 8).endCell(),
    workerCode: beginCell().storeUint(2, 8).endCell(),
    clientCode: beginCell().storeUint(3, 8).endCell(),
};
const params = (overrides = {}) => defaultParams({ ...placeholderCodes, ...overrides });

const HASH_A = 0xaaaan;
const HASH_B = 0xbbbbn;

describe('root registry', () => {
    let chain, owner, stranger, root;

    beforeEach(async () => {
        chain = await newChain();
        owner = await chain.treasury('owner');
        stranger = await chain.treasury('stranger');
        root = chain.openContract(Deployed.fromCode(codes.root, rootData(owner.address, params())));
        // deploy with a plain transfer
        const r = await root.sendBody(owner.getSender(), TON, beginCell());
        expectTx(r.transactions, { to: root.address, success: true });
    });

    async function ownerSends(body, sender = owner) {
        return root.sendBody(sender.getSender(), TON / 10n, body);
    }

    async function version() {
        return (await root.getStack('get_version')).readNumber();
    }

    async function readRootData() {
        const s = await root.getStack('get_root_data');
        return {
            owner: s.readAddress(),
            version: s.readNumber(),
            nextProxySeqno: s.readNumber(),
            params: s.readCell(),
            proxyImageHashes: s.readCellOpt(),
            workerImageHashes: s.readCellOpt(),
            modelHashes: s.readCellOpt(),
            registeredProxies: s.readCellOpt(),
        };
    }

    async function allowed(getter, hash) {
        return (await root.getStack(getter, [hash])).readBoolean();
    }

    test('starts at version 0 with its owner and parameters', async () => {
        assert.equal(await version(), 0);
        const ownerAddr = (await root.getStack('get_owner')).readAddress();
        assert.ok(ownerAddr.equals(owner.address));
        const pc = (await root.getStack('get_params_cell')).readCell();
        assert.ok(pc.equals(paramsCell(params())));
        const p = await root.getStack('get_params');
        assert.equal(p.readNumber(), 1); // struct version
        assert.equal(p.readNumber(), 1); // params version
        assert.equal(p.readNumber(), 42); // unique id
        assert.equal(p.readBoolean(), true); // is_test
        assert.equal(p.readBigNumber(), 1000n); // price per token
        assert.equal(p.readBigNumber(), 800n); // worker fee per token
    });

    for (const [name, addOp, removeOp, getter, field] of [
        ['proxy image', Op.rootAddProxyImage, Op.rootRemoveProxyImage, 'is_proxy_image_allowed', 'proxyImageHashes'],
        ['worker image', Op.rootAddWorkerImage, Op.rootRemoveWorkerImage, 'is_worker_image_allowed', 'workerImageHashes'],
        ['model', Op.rootAddModel, Op.rootRemoveModel, 'is_model_allowed', 'modelHashes'],
    ]) {
        test(`owner adds and removes ${name} hashes; each change bumps the version`, async () => {
            let r = await ownerSends(opBody(addOp, 7n).storeUint(HASH_A, 256));
            const tx = expectTx(r.transactions, { to: root.address, success: true });
            expectTx(r.transactions, { from: root.address, to: owner.address, op: Op.excesses });
            assert.ok(tx);
            await ownerSends(opBody(addOp).storeUint(HASH_B, 256));
            assert.equal(await allowed(getter, HASH_A), true);
            assert.equal(await allowed(getter, HASH_B), true);
            assert.equal(await allowed(getter, 0xccccn), false);
            assert.equal(await version(), 2);

            const data = await readRootData();
            assert.deepEqual(hashSetKeys(data[field]).sort(), [HASH_A, HASH_B]);

            r = await ownerSends(opBody(addOp).storeUint(HASH_A, 256));
            expectRefused(r.transactions, root.address, Err.alreadyRegistered);

            await ownerSends(opBody(removeOp).storeUint(HASH_A, 256));
            assert.equal(await allowed(getter, HASH_A), false);
            r = await ownerSends(opBody(removeOp).storeUint(HASH_A, 256));
            expectRefused(r.transactions, root.address, Err.notFound);
            assert.equal(await version(), 3);
        });
    }

    test('registers proxies by seqno, updates and removes them', async () => {
        const endpoint = (s) => beginCell().storeStringTail(s).endCell();
        await ownerSends(opBody(Op.rootRegisterProxy).storeRef(endpoint('10.0.0.1:11002')));
        await ownerSends(opBody(Op.rootRegisterProxy).storeRef(endpoint('10.0.0.2:11002 10.0.0.2:11001')));
        const readEndpoint = async (seqno) => {
            const s = await root.getStack('get_proxy_endpoint', [seqno]);
            const c = s.readCellOpt();
            return c === null ? null : c.beginParse().loadStringTail();
        };
        assert.equal(await readEndpoint(0), '10.0.0.1:11002');
        assert.equal(await readEndpoint(1), '10.0.0.2:11002 10.0.0.2:11001');
        assert.equal(await readEndpoint(2), null);

        await ownerSends(opBody(Op.rootUpdateProxy).storeUint(0, 32).storeRef(endpoint('10.0.0.9:11002')));
        assert.equal(await readEndpoint(0), '10.0.0.9:11002');
        await ownerSends(opBody(Op.rootRemoveProxy).storeUint(1, 32));
        assert.equal(await readEndpoint(1), null);
        let r = await ownerSends(opBody(Op.rootRemoveProxy).storeUint(1, 32));
        expectRefused(r.transactions, root.address, Err.notFound);
        r = await ownerSends(opBody(Op.rootUpdateProxy).storeUint(5, 32).storeRef(endpoint('x')));
        expectRefused(r.transactions, root.address, Err.notFound);

        // seqnos are never reused
        await ownerSends(opBody(Op.rootRegisterProxy).storeRef(endpoint('10.0.0.3:11002')));
        assert.equal(await readEndpoint(2), '10.0.0.3:11002');
        const data = await readRootData();
        assert.equal(data.nextProxySeqno, 3);
        assert.equal(data.version, 5);
        assert.ok(data.owner.equals(owner.address));
        const proxies = Dictionary.loadDirect(
            Dictionary.Keys.Uint(32),
            { serialize: () => {}, parse: (s) => s.loadRef().beginParse().loadStringTail() },
            data.registeredProxies,
        );
        assert.deepEqual(proxies.keys().sort(), [0, 2]);
        assert.equal(proxies.get(0), '10.0.0.9:11002');
    });

    test('updates parameters only to a consistent, newer set', async () => {
        const bad = [
            params({ paramsVersion: 2, workerFeePerToken: 1001n }), // worker paid more than the price
            params({ paramsVersion: 2, proxyDelayBeforeClose: 86400 }), // proxy delay not above client delay
            params({ paramsVersion: 2, pricePerToken: 0n, workerFeePerToken: 0n }),
            params({ paramsVersion: 2, completionMultiplier: 0 }),
            params({ paramsVersion: 1, pricePerToken: 2000n }), // version not increased
        ];
        for (const p of bad) {
            const r = await ownerSends(opBody(Op.rootUpdateParams).storeRef(paramsCell(p)));
            expectRefused(r.transactions, root.address, Err.invalidParams);
        }
        const good = params({ paramsVersion: 2, pricePerToken: 2000n, workerFeePerToken: 1500n });
        const r = await ownerSends(opBody(Op.rootUpdateParams).storeRef(paramsCell(good)));
        expectTx(r.transactions, { to: root.address, success: true });
        const pc = (await root.getStack('get_params_cell')).readCell();
        assert.ok(pc.equals(paramsCell(good)));
        assert.equal(await version(), 1);
    });

    test('refuses every update from anyone but the owner, and unknown ops', async () => {
        for (const body of [
            opBody(Op.rootAddProxyImage).storeUint(HASH_A, 256),
            opBody(Op.rootAddModel).storeUint(HASH_A, 256),
            opBody(Op.rootRegisterProxy).storeRef(beginCell().endCell()),
            opBody(Op.rootUpdateParams).storeRef(paramsCell(params({ paramsVersion: 5 }))),
            opBody(Op.rootChangeOwner).storeAddress(stranger.address),
        ]) {
            const r = await ownerSends(body, stranger);
            expectRefused(r.transactions, root.address, Err.notOwner);
        }
        const r = await ownerSends(opBody(0x12345678));
        expectRefused(r.transactions, root.address, Err.unknownOp);
        assert.equal(await version(), 0);
    });

    test('hands ownership over', async () => {
        await ownerSends(opBody(Op.rootChangeOwner).storeAddress(stranger.address));
        assert.ok((await root.getStack('get_owner')).readAddress().equals(stranger.address));
        let r = await ownerSends(opBody(Op.rootAddModel).storeUint(HASH_A, 256));
        expectRefused(r.transactions, root.address, Err.notOwner);
        r = await ownerSends(opBody(Op.rootAddModel).storeUint(HASH_A, 256), stranger);
        expectTx(r.transactions, { to: root.address, success: true });
    });
});
