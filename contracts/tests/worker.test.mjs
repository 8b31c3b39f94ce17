// Worker contract: cumulative payout vouchers pay delta x worker fee to the owner and credit
// delta x (price - worker fee) to the proxy's earned balance; the last payout closes it.
import { test, describe, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Err, Op, opBody, State, TON } from './helpers/layout.mjs';
import { expectNoTx, expectRefused, expectTx, plain, sentValue } from './helpers/sandbox.mjs';
import { GAS, setupNetwork, storageFees } from './helpers/network.mjs';

describe('worker contract', () => {
    let net, owner, stranger, worker, clientOwner, client;

    beforeEach(async () => {
        net = await setupNetwork();
        owner = await net.chain.treasury('worker-owner');
        stranger = await net.chain.treasury('stranger');
        worker = net.workerFor(owner);
        // a client pays 20 TON into the proxy contract, so that workers can be paid
        clientOwner = await net.chain.treasury('client-owner');
        client = net.clientFor(clientOwner);
        await net.topUp(client, clientOwner, 20n * TON);
    });

    test('its address is the one the proxy contract computes', async () => {
        const s = await net.proxy.getStack('get_worker_address', [owner.address]);
        assert.ok(s.readAddress().equals(worker.address));
    });

    test('payout pays exactly delta x worker fee and credits delta x (price - fee) to the proxy', async () => {
        const { pricePerToken: price, workerFeePerToken: fee } = net.params;
        const proxyBefore = await net.balance(net.proxy.address);
        let r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 1_000_000n));
        let proxyTx = expectTx(r.transactions, { from: worker.address, to: net.proxy.address, op: Op.workerProxyRequest, success: true });
        assert.equal(sentValue(proxyTx, owner.address), 1_000_000n * fee);
        expectTx(r.transactions, { from: net.proxy.address, to: net.submitter.address, op: Op.excesses });
        let p = await net.proxyData();
        assert.equal(p.earned, 1_000_000n * (price - fee));
        assert.equal(p.activeWorkers, 1);
        // the proxy contract's balance drops by the worker fee only
        const proxyAfter = await net.balance(net.proxy.address);
        assert.equal(proxyBefore - proxyAfter, 1_000_000n * fee + storageFees(r.transactions, net.proxy.address));

        let w = await net.workerData(worker);
        assert.equal(w.tokensPaid, 1_000_000n);
        assert.equal(w.announced, true);
        assert.equal(w.state, State.normal);

        // the next voucher pays only the difference
        r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 1_250_000n, { queryId: 2n }));
        proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), 250_000n * fee);
        p = await net.proxyData();
        assert.equal(p.earned, 1_250_000n * (price - fee));
        assert.equal(p.activeWorkers, 1);
    });

    test('refuses replayed, older, foreign-signed, misdirected and mislabelled vouchers', async () => {
        const v = net.voucher(Op.workerPayoutSigned, worker, 5000n);
        await net.submit(worker, v);
        const expected = plain(await net.workerData(worker));
        const earned = (await net.proxyData()).earned;

        let r = await net.submit(worker, v);
        expectRefused(r.transactions, worker.address, Err.voucherNotNewer);
        r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 4999n, { queryId: 3n }));
        expectRefused(r.transactions, worker.address, Err.voucherNotNewer);
        r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 9000n, { secretKey: net.otherKeys.secretKey }));
        expectRefused(r.transactions, worker.address, Err.badSignature);
        r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, net.workerFor(stranger), 9000n));
        expectRefused(r.transactions, worker.address, Err.wrongTarget);
        // a client's charge voucher cannot pay a worker, even for this address
        r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 9000n, { payloadOp: Op.clientChargeSigned }));
        expectRefused(r.transactions, worker.address, Err.wrongVoucherOp);
        r = await net.submit(worker, net.voucher(Op.clientChargeSigned, worker, 9000n));
        expectRefused(r.transactions, worker.address, Err.unknownOp);
        // a last-payout voucher below what was paid
        r = await net.submit(worker, net.voucher(Op.workerLastPayoutSigned, worker, 4999n));
        expectRefused(r.transactions, worker.address, Err.voucherNotNewer);

        assert.deepEqual(plain(await net.workerData(worker)), expected);
        assert.equal((await net.proxyData()).earned, earned);
    });

    test('payout with too little gas is refused before anything moves', async () => {
        const r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 5000n), TON / 100n);
        expectRefused(r.transactions, worker.address, Err.lowValue);
        expectNoTx(r.transactions, { to: net.proxy.address });
    });

    test('last payout pays the rest and closes; an equal final count only closes', async () => {
        const fee = net.params.workerFeePerToken;
        await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 1000n));
        let r = await net.submit(worker, net.voucher(Op.workerLastPayoutSigned, worker, 1500n, { queryId: 2n }));
        const proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), 500n * fee);
        let w = await net.workerData(worker);
        assert.equal(w.state, State.closed);
        assert.equal(w.tokensPaid, 1500n);
        assert.equal((await net.proxyData()).activeWorkers, 0);

        // closed: nothing more is paid
        r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 2000n, { queryId: 3n }));
        expectRefused(r.transactions, worker.address, Err.wrongState);
        r = await net.submit(worker, net.voucher(Op.workerLastPayoutSigned, worker, 2000n, { queryId: 3n }));
        expectRefused(r.transactions, worker.address, Err.wrongState);

        // another worker: the proxy closes it with a final count equal to what it was paid
        const other = await net.chain.treasury('worker-2');
        const worker2 = net.workerFor(other);
        await net.submit(worker2, net.voucher(Op.workerPayoutSigned, worker2, 700n));
        assert.equal((await net.proxyData()).activeWorkers, 1);
        r = await net.submit(worker2, net.voucher(Op.workerLastPayoutSigned, worker2, 700n));
        const tx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(tx.outMessages.values().filter((m) => m.info.dest?.equals?.(other.address)).length, 0);
        w = await net.workerData(worker2);
        assert.equal(w.state, State.closed);
        assert.equal((await net.proxyData()).activeWorkers, 0);
    });

    test('register announces the worker once, owner only', async () => {
        let r = await worker.sendBody(stranger.getSender(), GAS, opBody(Op.workerRegister));
        expectRefused(r.transactions, worker.address, Err.notOwner);
        r = await worker.sendBody(owner.getSender(), GAS, opBody(Op.workerRegister, 77n));
        expectTx(r.transactions, { to: net.proxy.address, op: Op.workerProxyRequest, success: true });
        expectTx(r.transactions, { from: net.proxy.address, to: owner.address, op: Op.excesses });
        assert.equal((await net.proxyData()).activeWorkers, 1);
        assert.equal((await net.workerData(worker)).announced, true);
        r = await worker.sendBody(owner.getSender(), GAS, opBody(Op.workerRegister));
        expectRefused(r.transactions, worker.address, Err.alreadyRegistered);
        // a payout after registering does not count the worker twice
        await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 10n));
        assert.equal((await net.proxyData()).activeWorkers, 1);
    });

    test('a payout the proxy cannot make comes back and is undone, so the voucher stays good', async () => {
        // 20 TON of client money at 800 nanoTON per token covers 25M tokens, not 100M
        let r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 100_000_000n));
        expectRefused(r.transactions, net.proxy.address, Err.nothingToPay);
        expectTx(r.transactions, { from: net.proxy.address, to: worker.address, bounced: true, success: true });
        const w = await net.workerData(worker);
        assert.equal(w.tokensPaid, 0n);
        assert.equal(w.announced, false);
        const p = await net.proxyData();
        assert.equal(p.earned, 0n);
        assert.equal(p.activeWorkers, 0);

        // once the proxy holds enough, the same voucher pays
        await net.topUp(client, clientOwner, 80n * TON);
        r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 100_000_000n));
        const proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), 100_000_000n * net.params.workerFeePerToken);
    });

    test('only genuine worker contracts can get paid', async () => {
        const forged = opBody(Op.workerProxyRequest)
            .storeUint(2, 8)
            .storeUint(1_000_000, 64)
            .storeUint(0, 8)
            .storeAddress(owner.address)
            .storeAddress(owner.address);
        const r = await net.proxy.sendBody(owner.getSender(), GAS, forged);
        expectRefused(r.transactions, net.proxy.address, Err.notAChild);
        // a worker contract bound to another key, pointing at this proxy contract
        const impostor = net.workerFor(owner, net.otherKeys.publicKey);
        const r2 = await impostor.sendBody(
            net.submitter.getSender(),
            GAS,
            net.voucher(Op.workerPayoutSigned, impostor, 1000n, { secretKey: net.otherKeys.secretKey }),
        );
        expectRefused(r2.transactions, net.proxy.address, Err.notAChild);
        assert.equal((await net.proxyData()).earned, 0n);
    });
});
