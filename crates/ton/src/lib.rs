//! TON cells, addresses, wallets, vouchers and chain backends.
