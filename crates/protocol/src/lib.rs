//! TL codec, message types, frame codec and version negotiation of the COCOON wire protocol.
