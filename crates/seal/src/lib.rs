//! Sealed-channel cryptography: HPKE envelopes and sealed chunk streams.
