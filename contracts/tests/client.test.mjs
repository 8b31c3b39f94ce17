// Client contract: deposits go to the proxy contract, vouchers charge the balance, the owner
// withdraws above the stake or asks for a refund; every refusal leaves the books unchanged.
import { test, describe, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { beginCell } from '@ton/core';
import { Err, Op, opBody, paramsCell, paramsCoreCell, State, TON } from './helpers/layout.mjs';
import { compute, expectNoTx, expectRefused, expectTx, plain, sentValue, summary } from './helpers/sandbox.mjs';
import { GAS, setupNetwork, storageFees } from './helpers/network.mjs';

describe('client contract', () => {
    let net, owner, stranger, client;

    beforeEach(async () => {
        net = await setupNetwork();
        owner = await net.chain.treasury('client-owner');
        stranger = await net.chain.treasury('stranger');
        client = net.clientFor(owner);
    });

    async function deposit(amount) {
        const r = await net.topUp(client, owner, amount);
        expectTx(r.transactions, { from: client.address, to: net.proxy.address, op: Op.clientProxyRequest, success: true });
        return r;
    }

    test('its address is the one the proxy contract computes; it keeps the numeric parameters', async () => {
        const s = await net.proxy.getStack('get_client_address', [owner.address]);
        assert.ok(s.readAddress().equals(client.address));
        await deposit(TON);
        const core = (await client.getStack('get_params_cell')).readCell();
        assert.ok(core.equals(paramsCoreCell(net.params)));
        const full = (await net.proxy.getStack('get_params_cell')).readCell();
        assert.ok(full.equals(paramsCell(net.params)));
        assert.ok(full.refs[0].equals(core));
    });

    test('top-up deploys the contract, moves the money to the proxy contract and announces the client', async () => {
        const before = await net.balance(net.proxy.address);
        const r = await deposit(5n * TON);
        const proxyTx = expectTx(r.transactions, { to: net.proxy.address, op: Op.clientProxyRequest });
        // the proxy keeps exactly the top-up; the rest of the gas comes back to the owner
        expectTx(r.transactions, { from: net.proxy.address, to: owner.address, op: Op.excesses });
        const after = await net.balance(net.proxy.address);
        assert.equal(after - before, 5n * TON - storageFees(r.transactions, net.proxy.address));
        assert.ok(proxyTx);

        const c = await net.clientData(client);
        assert.equal(c.state, State.normal);
        assert.equal(c.balance, 5n * TON);
        assert.equal(c.stake, net.params.minClientStake);
        assert.equal(c.announced, true);
        assert.ok(c.owner.equals(owner.address));
        assert.ok(c.proxyContract.equals(net.proxy.address));
        // the client contract keeps only its storage reserve
        assert.equal(await net.balance(client.address), TON / 50n);
        assert.equal((await net.proxyData()).activeClients, 1);

        // a second top-up from anyone adds up, without announcing the client again
        await net.topUp(client, stranger, 2n * TON);
        assert.equal((await net.clientData(client)).balance, 7n * TON);
        assert.equal((await net.proxyData()).activeClients, 1);
    });

    test('top-up with too little gas is refused before anything moves', async () => {
        const r = await net.topUp(client, owner, 5n * TON, 5n * TON + TON / 100n);
        expectRefused(r.transactions, client.address, Err.lowValue);
        expectNoTx(r.transactions, { to: net.proxy.address });
    });

    test('a top-up the proxy refuses (proxy not staked) comes back and is undone', async () => {
        net = await setupNetwork({ stake: false });
        await net.stakeProxy(net.params.minProxyStake - 1n);
        owner = await net.chain.treasury('client-owner');
        client = net.clientFor(owner);
        const r = await net.topUp(client, owner, 5n * TON);
        expectRefused(r.transactions, net.proxy.address, Err.stakeTooLow);
        const bounce = expectTx(r.transactions, { from: net.proxy.address, to: client.address, bounced: true, success: true });
        // the money goes back to the owner
        const back = sentValue(bounce, owner.address, Op.excesses);
        assert.ok(back > 5n * TON, `returned ${back}`);
        const c = await net.clientData(client);
        assert.equal(c.balance, 0n);
        assert.equal(c.announced, false);
        assert.equal((await net.proxyData()).activeClients, 0);
    });

    test('charge voucher subtracts exactly delta x price, cumulative', async () => {
        await deposit(5n * TON);
        let r = await net.submit(client, net.voucher(Op.clientChargeSigned, client, 1_000_000n));
        expectTx(r.transactions, { to: client.address, success: true });
        expectTx(r.transactions, { from: client.address, to: net.submitter.address, op: Op.excesses });
        let c = await net.clientData(client);
        assert.equal(c.tokensUsed, 1_000_000n);
        assert.equal(c.balance, 5n * TON - 1_000_000n * net.params.pricePerToken);

        r = await net.submit(client, net.voucher(Op.clientChargeSigned, client, 1_500_000n, { queryId: 2n }));
        expectTx(r.transactions, { to: client.address, success: true });
        c = await net.clientData(client);
        assert.equal(c.tokensUsed, 1_500_000n);
        assert.equal(c.balance, 5n * TON - 1_500_000n * net.params.pricePerToken);
        // charging moves no money: the funds stay in the proxy contract
        expectNoTx(r.transactions, { to: net.proxy.address });
    });

    test('a voucher worth more than the balance takes the whole balance and no more', async () => {
        await deposit(2n * TON);
        const tokens = (3n * TON) / net.params.pricePerToken;
        await net.submit(client, net.voucher(Op.clientChargeSigned, client, tokens));
        const c = await net.clientData(client);
        assert.equal(c.balance, 0n);
        assert.equal(c.tokensUsed, tokens);
    });

    test('refuses replayed, older, foreign-signed, misdirected and mislabelled vouchers', async () => {
        await deposit(5n * TON);
        const v = net.voucher(Op.clientChargeSigned, client, 1000n);
        await net.submit(client, v);
        const expected = plain(await net.clientData(client));

        // the same voucher again
        let r = await net.submit(client, v);
        expectRefused(r.transactions, client.address, Err.voucherNotNewer);
        // an older one
        r = await net.submit(client, net.voucher(Op.clientChargeSigned, client, 999n, { queryId: 5n }));
        expectRefused(r.transactions, client.address, Err.voucherNotNewer);
        // signed by another key
        r = await net.submit(client, net.voucher(Op.clientChargeSigned, client, 2000n, { secretKey: net.otherKeys.secretKey }));
        expectRefused(r.transactions, client.address, Err.badSignature);
        // signed for another client contract
        const other = net.clientFor(stranger);
        r = await net.submit(client, net.voucher(Op.clientChargeSigned, other, 2000n));
        expectRefused(r.transactions, client.address, Err.wrongTarget);
        // a refund grant presented as a charge (and the reverse)
        r = await net.submit(client, net.voucher(Op.clientChargeSigned, client, 2000n, { payloadOp: Op.clientGrantRefundSigned }));
        expectRefused(r.transactions, client.address, Err.wrongVoucherOp);
        r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 2000n, { payloadOp: Op.clientChargeSigned }));
        expectRefused(r.transactions, client.address, Err.wrongVoucherOp);
        // a worker payout voucher for this address
        r = await net.submit(client, net.voucher(Op.workerPayoutSigned, client, 2000n));
        expectRefused(r.transactions, client.address, Err.unknownOp);

        assert.deepEqual(plain(await net.clientData(client)), expected);
    });

    test('withdraw returns exactly balance - stake; below the stake it is refused', async () => {
        await deposit(5n * TON);
        await net.submit(client, net.voucher(Op.clientChargeSigned, client, 1_000_000n)); // 1 TON
        const r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientWithdraw));
        const proxyTx = expectTx(r.transactions, { to: net.proxy.address, op: Op.clientProxyRequest, success: true });
        const expected = 5n * TON - 1_000_000n * 1000n - net.params.minClientStake;
        assert.equal(sentValue(proxyTx, owner.address), expected, 'payout to the owner');
        const c = await net.clientData(client);
        assert.equal(c.balance, net.params.minClientStake);

        // nothing above the stake any more
        const again = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientWithdraw));
        expectRefused(again.transactions, client.address, Err.nothingToWithdraw);
        // and only the owner may withdraw
        const foreign = await client.sendBody(stranger.getSender(), GAS, opBody(Op.clientWithdraw));
        expectRefused(foreign.transactions, client.address, Err.notOwner);
    });

    test('increase_stake raises the locked part; withdraw then leaves it in', async () => {
        await deposit(5n * TON);
        let r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientIncreaseStake).storeCoins(3n * TON));
        expectTx(r.transactions, { to: client.address, success: true });
        assert.equal((await net.clientData(client)).stake, 3n * TON);
        r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientIncreaseStake).storeCoins(2n * TON));
        expectRefused(r.transactions, client.address, Err.stakeTooLow);
        r = await client.sendBody(stranger.getSender(), GAS, opBody(Op.clientIncreaseStake).storeCoins(4n * TON));
        expectRefused(r.transactions, client.address, Err.notOwner);
        r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientWithdraw));
        const proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), 2n * TON);
    });

    test('change_secret_hash and register are owner-only; register logs the nonce', async () => {
        await deposit(2n * TON);
        let r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientChangeSecretHash).storeUint(0x1234n, 256));
        expectTx(r.transactions, { to: client.address, success: true });
        assert.equal((await net.clientData(client)).secretHash, 0x1234n);
        r = await client.sendBody(stranger.getSender(), GAS, opBody(Op.clientChangeSecretHash).storeUint(1n, 256));
        expectRefused(r.transactions, client.address, Err.notOwner);

        r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientRegister).storeUint(0xdeadbeefn, 64));
        const tx = expectTx(r.transactions, { to: client.address, success: true });
        const logs = tx.outMessages.values().filter((m) => m.info.type === 'external-out');
        assert.equal(logs.length, 1);
        const s = logs[0].body.beginParse();
        assert.equal(s.loadUintBig(64), 0xdeadbeefn);
        assert.ok(s.loadAddress().equals(owner.address));
        r = await client.sendBody(stranger.getSender(), GAS, opBody(Op.clientRegister).storeUint(1n, 64));
        expectRefused(r.transactions, client.address, Err.notOwner);
    });

    test('refund without the proxy: above-stake part at once, stake after the delay, never twice', async () => {
        await deposit(5n * TON);
        await net.submit(client, net.voucher(Op.clientChargeSigned, client, 500_000n)); // 0.5 TON
        const start = net.chain.now;

        // first request: closing, everything above the stake comes back now
        let r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientRequestRefund));
        let proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), 5n * TON - 500_000_000n - TON);
        let c = await net.clientData(client);
        assert.equal(c.state, State.closing);
        assert.equal(c.balance, TON);
        assert.equal(c.unlockTime, start + net.params.clientDelayBeforeClose);

        // no more top-ups or withdrawals while closing; charges still land
        r = await net.topUp(client, owner, TON);
        expectRefused(r.transactions, client.address, Err.wrongState);
        r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientWithdraw));
        expectRefused(r.transactions, client.address, Err.wrongState);
        await net.submit(client, net.voucher(Op.clientChargeSigned, client, 600_000n, { queryId: 3n }));
        assert.equal((await net.clientData(client)).balance, TON - 100_000n * 1000n);

        // second request before the delay: refused
        net.chain.now = start + net.params.clientDelayBeforeClose - 1;
        r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientRequestRefund));
        expectRefused(r.transactions, client.address, Err.tooEarly);

        // after the delay: the stake (what is left of it) comes back and the client is closed
        net.chain.now = start + net.params.clientDelayBeforeClose;
        r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientRequestRefund));
        proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), TON - 100_000_000n);
        c = await net.clientData(client);
        assert.equal(c.state, State.closed);
        assert.equal(c.balance, 0n);
        assert.equal((await net.proxyData()).activeClients, 0);

        // a third request (double refund) and late vouchers are refused
        r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientRequestRefund));
        expectRefused(r.transactions, client.address, Err.wrongState);
        r = await net.submit(client, net.voucher(Op.clientChargeSigned, client, 700_000n, { queryId: 4n }));
        expectRefused(r.transactions, client.address, Err.wrongState);
        r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 700_000n, { queryId: 4n }));
        expectRefused(r.transactions, client.address, Err.wrongState);
    });

    test('refund granted by the proxy: final count charged, the rest returned at once', async () => {
        await deposit(5n * TON);
        let r = await client.sendBody(owner.getSender(), GAS, opBody(Op.clientRequestRefund));
        expectTx(r.transactions, { to: net.proxy.address, success: true });

        // an older final count is refused
        await net.submit(client, net.voucher(Op.clientChargeSigned, client, 200_000n));
        r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 199_999n));
        expectRefused(r.transactions, client.address, Err.voucherNotNewer);

        // the proxy grants with its final count: 300,000 tokens (0.3 TON)
        r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 300_000n, { queryId: 9n }));
        const proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), TON - 300_000n * 1000n);
        expectTx(r.transactions, { from: net.proxy.address, to: net.submitter.address, op: Op.excesses });
        const c = await net.clientData(client);
        assert.equal(c.state, State.closed);
        assert.equal(c.tokensUsed, 300_000n);
        assert.equal((await net.proxyData()).activeClients, 0);

        r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 300_000n, { queryId: 10n }));
        expectRefused(r.transactions, client.address, Err.wrongState);
    });

    test('the proxy may close a client without a request (a final count equal to the charged one)', async () => {
        await deposit(3n * TON);
        await net.submit(client, net.voucher(Op.clientChargeSigned, client, 1000n));
        const r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 1000n));
        const proxyTx = expectTx(r.transactions, { to: net.proxy.address, success: true });
        assert.equal(sentValue(proxyTx, owner.address), 3n * TON - 1000n * 1000n);
        assert.equal((await net.clientData(client)).state, State.closed);
    });

    test('only genuine client contracts can move client funds in the proxy contract', async () => {
        await deposit(5n * TON);
        // a request that claims to come from `owner`'s client contract, sent by the owner's wallet
        const forged = opBody(Op.clientProxyRequest)
            .storeUint(2, 8)
            .storeCoins(5n * TON)
            .storeUint(0, 8)
            .storeAddress(owner.address)
            .storeAddress(owner.address);
        const r = await net.proxy.sendBody(owner.getSender(), GAS, forged);
        expectRefused(r.transactions, net.proxy.address, Err.notAChild);
        // a client contract of another proxy key at this proxy address is not a child either
        const impostor = net.clientFor(owner, net.otherKeys.publicKey);
        const r2 = await net.topUp(impostor, owner, TON);
        expectRefused(r2.transactions, net.proxy.address, Err.notAChild);
        assert.equal((await net.proxyData()).activeClients, 1);
    });

    test('unknown ops are refused; plain transfers are accepted', async () => {
        await deposit(TON);
        let r = await client.sendBody(owner.getSender(), GAS, opBody(0x01020304));
        expectRefused(r.transactions, client.address, Err.unknownOp);
        r = await client.sendBody(owner.getSender(), GAS, beginCell());
        const tx = expectTx(r.transactions, { to: client.address });
        assert.equal(compute(tx).exitCode, 0);
    });
});
