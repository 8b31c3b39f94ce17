// A small network in the sandbox: a root registry, one staked proxy contract with its Ed25519
// key, and helpers to open client and worker contracts, sign vouchers and read every contract.
import { keyPairFromSeed } from '@ton/crypto';
import { beginCell } from '@ton/core';
import {
    addressOf,
    clientData,
    codes,
    defaultParams,
    Op,
    opBody,
    proxyData,
    rootData,
    signedBody,
    TON,
    workerData,
} from './layout.mjs';
import { Deployed, expectTx, newChain } from './sandbox.mjs';

/** Gas attached to child -> proxy requests in tests: above the contracts' minimum. */
export const GAS = TON / 10n;

export async function setupNetwork({ params: paramsOverrides = {}, stake = true } = {}) {
    const chain = await newChain();
    const params = defaultParams(paramsOverrides);
    const rootOwner = await chain.treasury('root-owner');
    const proxyOwner = await chain.treasury('proxy-owner');
    const submitter = await chain.treasury('submitter');
    const proxyKeys = keyPairFromSeed(Buffer.alloc(32, 7));
    const otherKeys = keyPairFromSeed(Buffer.alloc(32, 9));

    const root = chain.openContract(Deployed.fromCode(codes.root, rootData(rootOwner.address, params)));
    await root.sendBody(rootOwner.getSender(), TON, beginCell());

    const proxy = chain.openContract(
        Deployed.fromCode(
            codes.proxy,
            proxyData({ owner: proxyOwner.address, publicKey: proxyKeys.publicKey, root: root.address, params }),
        ),
    );

    const net = {
        chain,
        params,
        root,
        rootOwner,
        proxyOwner,
        submitter,
        proxyKeys,
        otherKeys,
        proxy,

        async stakeProxy(amount = params.minProxyStake, from = proxyOwner) {
            return proxy.sendBody(from.getSender(), amount + GAS, opBody(Op.proxyIncreaseStake).storeCoins(amount));
        },

        clientFor(owner, publicKey = proxyKeys.publicKey, proxyAddress = proxy.address) {
            return chain.openContract(
                Deployed.fromCode(codes.client, clientData({ owner: owner.address, proxyContract: proxyAddress, publicKey, params })),
            );
        },

        workerFor(owner, publicKey = proxyKeys.publicKey, proxyAddress = proxy.address) {
            return chain.openContract(
                Deployed.fromCode(codes.worker, workerData({ owner: owner.address, proxyContract: proxyAddress, publicKey, params })),
            );
        },

        /** A signed message for `target`, by the proxy key unless `secretKey` is given. */
        voucher(op, target, tokens, { queryId = 1n, secretKey = proxyKeys.secretKey, excessesTo = submitter.address, payloadOp } = {}) {
            return signedBody({ op, queryId, tokens: BigInt(tokens), target: target.address ?? target, excessesTo, secretKey, payloadOp });
        },

        async submit(contract, body, value = GAS) {
            return contract.sendBody(submitter.getSender(), value, body);
        },

        async topUp(client, owner, amount, value = amount + GAS) {
            return client.sendBody(owner.getSender(), value, opBody(Op.clientTopUp).storeCoins(amount).storeAddress(owner.address));
        },

        async proxyData() {
            const s = await proxy.getStack('get_proxy_data');
            return {
                state: s.readNumber(),
                earned: s.readBigNumber(),
                stake: s.readBigNumber(),
                unlockTime: s.readNumber(),
                activeClients: s.readNumber(),
                activeWorkers: s.readNumber(),
                savedSeqno: s.readNumber(),
                savedStateHash: s.readBigNumber(),
                owner: s.readAddress(),
                proxyPublicKey: s.readBigNumber(),
                root: s.readAddress(),
            };
        },

        async clientData(client) {
            const s = await client.getStack('get_client_data');
            return {
                state: s.readNumber(),
                balance: s.readBigNumber(),
                stake: s.readBigNumber(),
                tokensUsed: s.readBigNumber(),
                unlockTime: s.readNumber(),
                secretHash: s.readBigNumber(),
                owner: s.readAddress(),
                proxyContract: s.readAddress(),
                proxyPublicKey: s.readBigNumber(),
                announced: s.readBoolean(),
            };
        },

        async workerData(worker) {
            const s = await worker.getStack('get_worker_data');
            return {
                state: s.readNumber(),
                tokensPaid: s.readBigNumber(),
                owner: s.readAddress(),
                proxyContract: s.readAddress(),
                proxyPublicKey: s.readBigNumber(),
                announced: s.readBoolean(),
            };
        },

        async balance(address) {
            return (await chain.getContract(address)).balance;
        },
    };

    if (stake) {
        const r = await net.stakeProxy();
        expectTx(r.transactions, { to: proxy.address, success: true });
    }
    return net;
}

/** Storage fees `address` paid in these transactions (they make balance checks exact). */
export function storageFees(txs, address) {
    let total = 0n;
    for (const tx of txs) {
        const m = tx.inMessage;
        if (!m || !m.info.dest || !m.info.dest.equals?.(address)) continue;
        const sp = tx.description.storagePhase;
        if (sp) total += sp.storageFeesCollected;
    }
    return total;
}

export { addressOf };
