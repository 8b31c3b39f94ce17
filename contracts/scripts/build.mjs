// Compiles every contract in src/*.tolk with the Tolk compiler (tolk-js) and writes
// build/<name>.json with the code BOC (base64) and its representation hash (hex),
// so that the Rust crates can embed exactly the code the tests ran against.
import { runTolkCompiler, getTolkCompilerVersion } from '@ton/tolk-js';
import { Cell } from '@ton/core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'src');
const buildDir = path.join(root, 'build');

/** The contracts: every top-level .tolk file in src/ (src/common holds shared code). */
export function contractNames() {
    return fs
        .readdirSync(srcDir)
        .filter((f) => f.endsWith('.tolk'))
        .map((f) => f.slice(0, -'.tolk'.length))
        .sort();
}

async function compileOne(name) {
    const result = await runTolkCompiler({
        entrypointFileName: `${name}.tolk`,
        // Imports arrive relative to src/ (the compiler normalizes them first).
        fsReadCallback: (p) => fs.readFileSync(path.isAbsolute(p) ? p : path.join(srcDir, p), 'utf-8'),
    });
    if (result.status === 'error') {
        throw new Error(`${name}.tolk: ${result.message}`);
    }
    if (result.stderr && result.stderr.trim() !== '') {
        process.stderr.write(`${name}.tolk warnings:\n${result.stderr}\n`);
    }
    // Cross-check the compiler's hash with @ton/core's, the library the tests use.
    const cell = Cell.fromBoc(Buffer.from(result.codeBoc64, 'base64'))[0];
    const hashHex = cell.hash().toString('hex');
    if (hashHex !== result.codeHashHex.toLowerCase().padStart(64, '0')) {
        throw new Error(`${name}: code hash mismatch (${hashHex} vs ${result.codeHashHex})`);
    }
    return {
        name,
        tolkVersion: result.tolkVersion,
        codeBoc64: result.codeBoc64,
        codeHashHex: hashHex,
    };
}

async function main() {
    fs.mkdirSync(buildDir, { recursive: true });
    const version = await getTolkCompilerVersion();
    for (const name of contractNames()) {
        const out = await compileOne(name);
        fs.writeFileSync(path.join(buildDir, `${name}.json`), JSON.stringify(out, null, 2) + '\n');
        console.log(`built ${name}: code hash ${out.codeHashHex} (Tolk ${version})`);
    }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main().catch((e) => {
        console.error(e.message ?? e);
        process.exit(1);
    });
}
