// Proxy contract: stake, commission payout, ledger anchoring, and the close that waits for its
// delay and for every client refund and every worker's last payout.
import { test, describe, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell } from '@ton/core';
import { sign } from '@ton/crypto';
import { Err, Op, opBody, State, TON } from './helpers/layout.mjs';
import { expectRefused, expectTx, outMessages, sentValue } from './helpers/sandbox.mjs';
import { GAS, setupNetwork, storageFees } from './helpers/network.mjs';

describe('proxy contract', () => {
    let net, owner, stranger;

    beforeEach(async () => {
        net = await setupNetwork();
        owner = net.proxyOwner;
        stranger = await net.chain.treasury('stranger');
    });

    const ownerSends = (body, value = GAS, from = owner) => net.proxy.sendBody(from.getSender(), value, body);

    test('starts normal, staked, bound to its key, owner and root', async () => {
        const p = await net.proxyData();
        assert.equal(p.state, State.normal);
        assert.equal(p.stake, net.params.minProxyStake);
        assert.equal(p.earned, 0n);
        assert.ok(p.owner.equals(owner.address));
        assert.ok(p.root.equals(net.root.address));
        assert.equal(p.proxyPublicKey, BigInt('0x' + net.proxyKeys.publicKey.toString('hex')));
    });

    test('increase_stake keeps exactly the stake and returns the rest', async () => {
        const before = await net.balance(net.proxy.address);
        const r = await net.stakeProxy(3n * TON, stranger);
        expectTx(r.transactions, { from: net.proxy.address, to: stranger.address, op: Op.excesses });
        assert.equal((await net.proxyData()).stake, net.params.minProxyStake + 3n * TON);
        assert.equal((await net.balance(net.proxy.address)) - before, 3n * TON - storageFees(r.transactions, net.proxy.address));
        const low = await ownerSends(opBody(Op.proxyIncreaseStake).storeCoins(3n * TON), 3n * TON);
        expectRefused(low.transactions, net.proxy.address, Err.lowValue);
    });

    async function earnCommission() {
        // a client deposits, a worker is paid for 1M tokens: commission 1M x (1000 - 800)
        const clientOwner = await net.chain.treasury('client-owner');
        const client = net.clientFor(clientOwner);
        await net.topUp(client, clientOwner, 5n * TON);
        const workerOwner = await net.chain.treasury('worker-owner');
        const worker = net.workerFor(workerOwner);
        await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 1_000_000n));
        return { client, clientOwner, worker, workerOwner };
    }

    test('payout sends exactly the earned commission to the owner, once', async () => {
        await earnCommission();
        const earned = (await net.proxyData()).earned;
        assert.equal(earned, 200_000_000n);
        let r = await ownerSends(opBody(Op.proxyPayout, 5n), GAS, stranger);
        expectRefused(r.transactions, net.proxy.address, Err.notOwner);
        const before = await net.balance(net.proxy.address);
        r = await ownerSends(opBody(Op.proxyPayout, 5n));
        const tx = expectTx(r.transactions, { to: net.proxy.address, op: Op.proxyPayout, success: true });
        assert.equal(sentValue(tx, owner.address), earned);
        assert.equal(before - (await net.balance(net.proxy.address)), earned + storageFees(r.transactions, net.proxy.address));
        assert.equal((await net.proxyData()).earned, 0n);
        r = await ownerSends(opBody(Op.proxyPayout, 6n));
        expectRefused(r.transactions, net.proxy.address, Err.nothingToPay);
    });

    function anchorBody(seqno, stateHash, signature) {
        const b = opBody(Op.doNotProcess, 1n).storeUint(Op.proxySaveState, 32).storeUint(seqno, 32).storeUint(stateHash, 256);
        if (signature) b.storeRef(beginCell().storeBuffer(signature).endCell());
        return b;
    }

    function anchorSignature(seqno, stateHash, secretKey = net.proxyKeys.secretKey, proxyAddress = net.proxy.address) {
        const payload = beginCell()
            .storeUint(Op.proxySaveState, 32)
            .storeAddress(proxyAddress)
            .storeUint(seqno, 32)
            .storeUint(stateHash, 256)
            .endCell();
        return sign(payload.hash(), secretKey);
    }

    test('save_state anchors strictly increasing seqnos, from the owner or signed by the proxy key', async () => {
        let r = await ownerSends(anchorBody(1, 0xabcn));
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        let p = await net.proxyData();
        assert.equal(p.savedSeqno, 1);
        assert.equal(p.savedStateHash, 0xabcn);

        // the same or an older seqno
        r = await ownerSends(anchorBody(1, 0xdefn));
        expectRefused(r.transactions, net.proxy.address, Err.seqnoNotNewer);
        r = await ownerSends(anchorBody(0, 0xdefn));
        expectRefused(r.transactions, net.proxy.address, Err.seqnoNotNewer);

        // anyone else needs the proxy key's signature
        r = await ownerSends(anchorBody(5, 0x55n), GAS, stranger);
        expectRefused(r.transactions, net.proxy.address, Err.notOwner);
        r = await ownerSends(anchorBody(5, 0x55n, anchorSignature(5, 0x55n, net.otherKeys.secretKey)), GAS, stranger);
        expectRefused(r.transactions, net.proxy.address, Err.badSignature);
        r = await ownerSends(anchorBody(5, 0x55n, anchorSignature(5, 0x56n)), GAS, stranger);
        expectRefused(r.transactions, net.proxy.address, Err.badSignature);
        r = await ownerSends(anchorBody(5, 0x55n, anchorSignature(5, 0x55n, undefined, stranger.address)), GAS, stranger);
        expectRefused(r.transactions, net.proxy.address, Err.badSignature);
        r = await ownerSends(anchorBody(5, 0x55n, anchorSignature(5, 0x55n)), GAS, stranger);
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        p = await net.proxyData();
        assert.equal(p.savedSeqno, 5);
        assert.equal(p.savedStateHash, 0x55n);
        // a replay of that signed anchor is refused
        r = await ownerSends(anchorBody(5, 0x55n, anchorSignature(5, 0x55n)), GAS, stranger);
        expectRefused(r.transactions, net.proxy.address, Err.seqnoNotNewer);

        // other do_not_process notes are accepted and change nothing
        r = await ownerSends(opBody(Op.doNotProcess, 2n).storeUint(0x11111111, 32).storeUint(99, 32), GAS, stranger);
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        expectTx(r.transactions, { from: net.proxy.address, to: stranger.address, op: Op.excesses });
        r = await ownerSends(opBody(Op.doNotProcess, 3n), GAS, stranger);
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal((await net.proxyData()).savedSeqno, 5);
    });

    test('the proxy cannot leave before its delay, nor before clients are refunded and workers paid', async () => {
        const { client, clientOwner, worker } = await earnCommission();
        const start = net.chain.now;
        let r = await ownerSends(opBody(Op.proxyOwnerClose), GAS, stranger);
        expectRefused(r.transactions, net.proxy.address, Err.notOwner);
        r = await ownerSends(opBody(Op.proxyOwnerClose));
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        let p = await net.proxyData();
        assert.equal(p.state, State.closing);
        assert.equal(p.unlockTime, start + net.params.proxyDelayBeforeClose);
        assert.equal(p.activeClients, 1);
        assert.equal(p.activeWorkers, 1);

        // while closing: no new client money, no new stake, no new worker registrations
        r = await net.topUp(client, clientOwner, TON);
        expectRefused(r.transactions, net.proxy.address, Err.wrongState);
        assert.equal((await net.clientData(client)).balance, 5n * TON);
        r = await net.stakeProxy(TON);
        expectRefused(r.transactions, net.proxy.address, Err.wrongState);
        const lateOwner = await net.chain.treasury('late-worker');
        const late = net.workerFor(lateOwner);
        r = await late.sendBody(lateOwner.getSender(), GAS, opBody(Op.workerRegister));
        expectRefused(r.transactions, net.proxy.address, Err.wrongState);
        assert.equal((await net.workerData(late)).announced, false);

        // before the delay: refused, whoever asks
        r = await ownerSends(opBody(Op.proxyOwnerClose));
        expectRefused(r.transactions, net.proxy.address, Err.tooEarly);

        // after the delay, the client and the worker are still open: refused
        net.chain.now = start + net.params.proxyDelayBeforeClose;
        r = await ownerSends(opBody(Op.proxyOwnerClose));
        expectRefused(r.transactions, net.proxy.address, Err.activeChildren);

        // the client is refunded (the proxy grants the final count); the worker still open: refused
        r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 1_000_000n));
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        r = await ownerSends(opBody(Op.proxyOwnerClose));
        expectRefused(r.transactions, net.proxy.address, Err.activeChildren);

        // the worker takes its last payout while the proxy is closing
        r = await net.submit(worker, net.voucher(Op.workerLastPayoutSigned, worker, 1_000_000n));
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        p = await net.proxyData();
        assert.equal(p.activeClients, 0);
        assert.equal(p.activeWorkers, 0);

        // now the proxy leaves: everything it holds goes to the owner
        const holding = await net.balance(net.proxy.address);
        r = await ownerSends(opBody(Op.proxyOwnerClose, 3n));
        const tx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        const paid = sentValue(tx, owner.address);
        // stake (10) + commission (0.2) + client money not claimed by workers (0); gas from the message
        assert.ok(paid >= holding - storageFees(r.transactions, net.proxy.address), `paid ${paid} of ${holding}`);
        assert.equal(await net.balance(net.proxy.address), 0n);
        p = await net.proxyData();
        assert.equal(p.state, State.closed);
        assert.equal(p.stake, 0n);
        assert.equal(p.earned, 0n);

        // closed for good
        r = await ownerSends(opBody(Op.proxyOwnerClose));
        expectRefused(r.transactions, net.proxy.address, Err.wrongState);
        r = await net.submit(net.proxy, net.voucher(Op.proxyCloseCompleteSigned, net.proxy, 0n));
        expectRefused(r.transactions, net.proxy.address, Err.wrongState);
    });

    test('clients get their stake back from a closing proxy that never answers', async () => {
        const { client, clientOwner, worker } = await earnCommission();
        await net.submit(client, net.voucher(Op.clientChargeSigned, client, 1_000_000n));
        await ownerSends(opBody(Op.proxyOwnerClose));
        const start = net.chain.now;

        // the client asks twice, the second time after its own (shorter) delay
        let r = await client.sendBody(clientOwner.getSender(), GAS, opBody(Op.clientRequestRefund));
        let proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, clientOwner.address), 3n * TON);
        net.chain.now = start + net.params.clientDelayBeforeClose;
        r = await client.sendBody(clientOwner.getSender(), GAS, opBody(Op.clientRequestRefund));
        proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, clientOwner.address), TON);

        // the worker's last payout; then, after the proxy delay, the proxy may leave
        await net.submit(worker, net.voucher(Op.workerLastPayoutSigned, worker, 1_000_000n));
        net.chain.now = start + net.params.proxyDelayBeforeClose;
        r = await ownerSends(opBody(Op.proxyOwnerClose));
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal((await net.proxyData()).state, State.closed);
    });

    test('close_signed and close_complete_signed need the proxy key and a voucher for this proxy', async () => {
        const start = net.chain.now;
        let r = await net.submit(net.proxy, net.voucher(Op.proxyCloseSigned, net.proxy, 0n, { secretKey: net.otherKeys.secretKey }));
        expectRefused(r.transactions, net.proxy.address, Err.badSignature);
        r = await net.submit(net.proxy, net.voucher(Op.proxyCloseSigned, net.root, 0n));
        expectRefused(r.transactions, net.proxy.address, Err.wrongTarget);
        r = await net.submit(net.proxy, net.voucher(Op.proxyCloseSigned, net.proxy, 0n, { payloadOp: Op.proxyCloseCompleteSigned }));
        expectRefused(r.transactions, net.proxy.address, Err.wrongVoucherOp);
        // completing a close that never started
        r = await net.submit(net.proxy, net.voucher(Op.proxyCloseCompleteSigned, net.proxy, 0n));
        expectRefused(r.transactions, net.proxy.address, Err.wrongState);

        r = await net.submit(net.proxy, net.voucher(Op.proxyCloseSigned, net.proxy, 0n));
        expectTx(r.transactions, { to: net.proxy.address, success: true });
        expectTx(r.transactions, { from: net.proxy.address, to: net.submitter.address, op: Op.excesses });
        assert.equal((await net.proxyData()).state, State.closing);
        // a second start is refused
        r = await net.submit(net.proxy, net.voucher(Op.proxyCloseSigned, net.proxy, 0n));
        expectRefused(r.transactions, net.proxy.address, Err.wrongState);

        const complete = net.voucher(Op.proxyCloseCompleteSigned, net.proxy, 0n);
        r = await net.submit(net.proxy, complete);
        expectRefused(r.transactions, net.proxy.address, Err.tooEarly);
        net.chain.now = start + net.params.proxyDelayBeforeClose;
        r = await net.submit(net.proxy, net.voucher(Op.proxyCloseCompleteSigned, net.proxy, 0n, { secretKey: net.otherKeys.secretKey }));
        expectRefused(r.transactions, net.proxy.address, Err.badSignature);
        r = await net.submit(net.proxy, complete);
        const tx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        // the owner gets the stake back (plus the submitter's leftover gas)
        assert.ok(sentValue(tx, owner.address) >= net.params.minProxyStake);
        assert.equal(outMessages(tx).length, 1);
        assert.equal((await net.proxyData()).state, State.closed);
    });

    test('unknown ops are refused; plain transfers are accepted', async () => {
        let r = await ownerSends(opBody(0x0badc0de));
        expectRefused(r.transactions, net.proxy.address, Err.unknownOp);
        r = await ownerSends(beginCell());
        expectTx(r.transactions, { to: net.proxy.address, success: true });
    });
});
