// The worked money example of docs/contracts.md, end to end: one client, one worker, one proxy,
// 10,000 identical requests, then refund, last payout and close. Every nanoTON is accounted for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Op, opBody, State, TON } from './helpers/layout.mjs';
import { expectTx, findTxs, sentValue } from './helpers/sandbox.mjs';
import { GAS, setupNetwork } from './helpers/network.mjs';

/** Adjusted tokens of one request, as the proxy meters it (protocol.md, pricing facts). */
export function adjustedTokens({ prompt, cached, completion, reasoning }, coefficient, params) {
    const adjust = (count, multiplier) => (BigInt(count) * BigInt(coefficient) * BigInt(multiplier)) / 10_000_000n;
    return (
        adjust(prompt - cached, params.promptMultiplier) +
        adjust(cached, params.cachedMultiplier) +
        adjust(completion - reasoning, params.completionMultiplier) +
        adjust(reasoning, params.reasoningMultiplier)
    );
}

test('worked example: tokens -> adjusted tokens -> nanoTON -> who gets what', async () => {
    const net = await setupNetwork({
        params: {
            pricePerToken: 20n,
            workerFeePerToken: 16n,
            promptMultiplier: 10000, // 1.0x
            cachedMultiplier: 1000, // 0.1x
            completionMultiplier: 40000, // 4.0x
            reasoningMultiplier: 40000, // 4.0x
        },
    });
    const { params } = net;

    // One request: 1,200 prompt tokens of which 200 cached; 500 completion tokens of which 100
    // reasoning; the worker's coefficient is 1500 (1.5x).
    const usage = { prompt: 1200, cached: 200, completion: 500, reasoning: 100 };
    const perRequest = adjustedTokens(usage, 1500, params);
    assert.equal(perRequest, 1500n + 30n + 2400n + 600n); // 4,530 adjusted tokens
    assert.equal(perRequest * params.pricePerToken, 90_600n); // the client pays 90,600 nanoTON
    assert.equal(perRequest * params.workerFeePerToken, 72_480n); // the worker earns 72,480
    assert.equal(perRequest * (params.pricePerToken - params.workerFeePerToken), 18_120n); // the proxy keeps 18,120

    const requests = 10_000n;
    const total = perRequest * requests; // 45,300,000 adjusted tokens

    const clientOwner = await net.chain.treasury('client-owner');
    const workerOwner = await net.chain.treasury('worker-owner');
    const client = net.clientFor(clientOwner);
    const worker = net.workerFor(workerOwner);

    // the client deposits 10 TON
    await net.topUp(client, clientOwner, 10n * TON);

    // after the requests the client submits its latest charge voucher, the worker its payout
    await net.submit(client, net.voucher(Op.clientChargeSigned, client, total));
    assert.equal((await net.clientData(client)).balance, 10n * TON - 906_000_000n); // 9.094 TON left

    let r = await net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, total));
    let proxyTx = expectTx(r.transactions, { to: net.proxy.address, op: Op.workerProxyRequest, success: true });
    assert.equal(sentValue(proxyTx, workerOwner.address), 724_800_000n); // 0.7248 TON to the worker
    assert.equal((await net.proxyData()).earned, 181_200_000n); // 0.1812 TON commission

    // the proxy owner collects the commission
    r = await net.proxy.sendBody(net.proxyOwner.getSender(), GAS, opBody(Op.proxyPayout));
    proxyTx = expectTx(r.transactions, { to: net.proxy.address, op: Op.proxyPayout, success: true });
    assert.equal(sentValue(proxyTx, net.proxyOwner.address), 181_200_000n);

    // the proxy closes: it grants the client's refund and the worker's last payout
    const start = net.chain.now;
    await net.proxy.sendBody(net.proxyOwner.getSender(), GAS, opBody(Op.proxyOwnerClose));
    r = await net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, total));
    proxyTx = expectTx(r.transactions, { to: net.proxy.address, op: Op.clientProxyRequest, success: true });
    assert.equal(sentValue(proxyTx, clientOwner.address), 9_094_000_000n);
    r = await net.submit(worker, net.voucher(Op.workerLastPayoutSigned, worker, total));
    assert.equal(findTxs(r.transactions, { to: net.proxy.address }).length, 1); // only closes, nothing to pay

    net.chain.now = start + params.proxyDelayBeforeClose;
    r = await net.proxy.sendBody(net.proxyOwner.getSender(), GAS, opBody(Op.proxyOwnerClose));
    proxyTx = expectTx(r.transactions, { to: net.proxy.address, op: Op.proxyOwnerClose, success: true });
    // the stake comes back (with gas leftovers and whatever plain transfers added)
    assert.ok(sentValue(proxyTx, net.proxyOwner.address) >= params.minProxyStake);
    assert.equal((await net.proxyData()).state, State.closed);
    assert.equal((await net.clientData(client)).state, State.closed);
    assert.equal((await net.workerData(worker)).state, State.closed);

    // conservation: 10 TON in = 0.7248 (worker) + 0.1812 (proxy) + 9.094 (client back)
    assert.equal(724_800_000n + 181_200_000n + 9_094_000_000n, 10n * TON);
});
