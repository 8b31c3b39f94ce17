// Gas used by every operation, read from the sandbox transactions, written to
// build/gas-report.md (and printed). Each row is one operation: the gas of every contract
// transaction it caused, their sum, and the fees of the whole chain of transactions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beginCell } from '@ton/core';
import { sign } from '@ton/crypto';
import { Op, opBody, paramsCell, TON } from './helpers/layout.mjs';
import { compute } from './helpers/sandbox.mjs';
import { GAS, setupNetwork } from './helpers/network.mjs';

const reportPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'build', 'gas-report.md');

test('gas report', async () => {
    const net = await setupNetwork({ stake: false });
    const clientOwner = await net.chain.treasury('client-owner');
    const workerOwner = await net.chain.treasury('worker-owner');
    const client = net.clientFor(clientOwner);
    const worker = net.workerFor(workerOwner);
    const names = new Map([
        [net.root.address.toRawString(), 'root'],
        [net.proxy.address.toRawString(), 'proxy'],
        [client.address.toRawString(), 'client'],
        [worker.address.toRawString(), 'worker'],
    ]);
    const rows = [];

    async function measure(operation, send) {
        const result = await send();
        const parts = [];
        let gas = 0n;
        let fees = 0n;
        for (const tx of result.transactions) {
            const dest = tx.inMessage?.info.dest;
            const name = dest && names.get(dest.toRawString());
            if (!name) continue; // wallets of the test
            const c = compute(tx);
            assert.ok(c && c.success, `${operation}: ${name} transaction failed (exit ${c?.exitCode})`);
            parts.push(`${name} ${c.gasUsed}`);
            gas += c.gasUsed;
            fees += tx.totalFees.coins;
        }
        assert.ok(parts.length > 0, `${operation}: no contract transaction`);
        rows.push({ operation, parts: parts.join(' + '), gas, fees });
    }

    const owner = net.proxyOwner;
    const send = (contract, from, body, value = GAS) => contract.sendBody(from.getSender(), value, body);

    await measure('root: add model hash (owner)', () => send(net.root, net.rootOwner, opBody(Op.rootAddModel).storeUint(1n, 256)));
    await measure('root: register proxy endpoint (owner)', () =>
        send(net.root, net.rootOwner, opBody(Op.rootRegisterProxy).storeRef(beginCell().storeStringTail('10.0.0.1:11002').endCell())),
    );
    await measure('root: update params (owner)', () =>
        send(net.root, net.rootOwner, opBody(Op.rootUpdateParams).storeRef(paramsCell({ ...net.params, paramsVersion: 2 }))),
    );
    await measure('proxy: increase_stake (deploys)', () => net.stakeProxy());
    await measure('client: top_up (first, deploys)', () => net.topUp(client, clientOwner, 10n * TON));
    await measure('client: top_up', () => net.topUp(client, clientOwner, TON));
    await measure('client: charge_signed', () => net.submit(client, net.voucher(Op.clientChargeSigned, client, 1_000_000n)));
    await measure('client: change_secret_hash', () => send(client, clientOwner, opBody(Op.clientChangeSecretHash).storeUint(5n, 256)));
    await measure('client: register (nonce log)', () => send(client, clientOwner, opBody(Op.clientRegister).storeUint(9n, 64)));
    await measure('client: increase_stake', () => send(client, clientOwner, opBody(Op.clientIncreaseStake).storeCoins(2n * TON)));
    await measure('client: withdraw', () => send(client, clientOwner, opBody(Op.clientWithdraw)));
    await measure('worker: register', () => send(worker, workerOwner, opBody(Op.workerRegister)));
    await measure('worker: payout_signed', () => net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 500_000n)));
    await measure('worker: payout_signed (next)', () => net.submit(worker, net.voucher(Op.workerPayoutSigned, worker, 900_000n)));
    await measure('proxy: payout (commission)', () => send(net.proxy, owner, opBody(Op.proxyPayout)));
    await measure('proxy: save_state (owner)', () =>
        send(net.proxy, owner, opBody(Op.doNotProcess).storeUint(Op.proxySaveState, 32).storeUint(1, 32).storeUint(7n, 256)),
    );
    await measure('proxy: save_state (signed by proxy key)', () => {
        const signed = beginCell().storeUint(Op.proxySaveState, 32).storeAddress(net.proxy.address).storeUint(2, 32).storeUint(8n, 256);
        const signature = sign(signed.endCell().hash(), net.proxyKeys.secretKey);
        const body = opBody(Op.doNotProcess)
            .storeUint(Op.proxySaveState, 32)
            .storeUint(2, 32)
            .storeUint(8n, 256)
            .storeRef(beginCell().storeBuffer(signature).endCell());
        return send(net.proxy, net.submitter, body);
    });
    // a second client that leaves without the proxy's help
    const loner = await net.chain.treasury('client-2');
    const client2 = net.clientFor(loner);
    names.set(client2.address.toRawString(), 'client');
    await net.topUp(client2, loner, 3n * TON);
    await measure('client: request_refund (first)', () => send(client2, loner, opBody(Op.clientRequestRefund)));
    await measure('proxy: close_signed', () => net.submit(net.proxy, net.voucher(Op.proxyCloseSigned, net.proxy, 0n)));
    await measure('client: grant_refund_signed', () => net.submit(client, net.voucher(Op.clientGrantRefundSigned, client, 1_200_000n)));
    await measure('worker: last_payout_signed', () => net.submit(worker, net.voucher(Op.workerLastPayoutSigned, worker, 1_000_000n)));

    net.chain.now += net.params.clientDelayBeforeClose;
    await measure('client: request_refund (second, after delay)', () => send(client2, loner, opBody(Op.clientRequestRefund)));

    net.chain.now += net.params.proxyDelayBeforeClose;
    await measure('proxy: close_complete_signed', () =>
        net.submit(net.proxy, net.voucher(Op.proxyCloseCompleteSigned, net.proxy, 0n)),
    );

    const fmt = (nano) => (Number(nano) / 1e9).toFixed(6);
    const lines = [
        '# Gas per operation',
        '',
        'Measured in the TON sandbox (`npm test`, tests/gas-report.test.mjs). "Contract transactions" lists the',
        'compute-phase gas of each contract transaction the operation caused, in order; "chain fees" is the sum of',
        'the total fees (gas, storage, forwarding) of those transactions, in TON, at the sandbox\'s basechain prices.',
        '',
        '| operation | contract transactions (gas) | total gas | chain fees (TON) |',
        '| --- | --- | ---: | ---: |',
        ...rows.map((r) => `| ${r.operation} | ${r.parts} | ${r.gas} | ${fmt(r.fees)} |`),
        '',
    ];
    fs.writeFileSync(reportPath, lines.join('\n'));
    console.log(lines.join('\n'));
});
