//! Every message of the COCOON protocol (reference versions 0–2), declared from its schema line.
//!
//! Module names follow TL namespaces. Structures are TL constructors; `Any*` enums are TL boxed
//! types with several constructors. [`Message`] covers every constructor, for dispatch.

/// Bits 16–23 of the `flags` of `client.runQueryEx` and `ext.runSealedQuery`: a COCOON
/// extension with no field behind it, the client's choice of worker (`0`: none, the proxy's
/// default; `1 + w`: a price weight of `w` percent; see `cocoon_market::Preference`). Our
/// decoders accept these bits; a reference proxy reads no field behind them.
pub const WORKER_PREFERENCE_FLAGS: u32 = 0x00ff_0000;

/// Bit 24 of the `flags` of `client.runQueryEx` and `ext.runSealedQuery`, a COCOON extension
/// with no field behind it: the request is a transcription (`/v1/audio/transcriptions`) and its
/// `max_tokens` is the billable units of its audio as the client measured them
/// ([`crate::audio`]). The proxy then bounds the prompt tokens a worker reports by `max_tokens`
/// and its completion tokens by zero, so a worker cannot charge for audio it was not sent;
/// the worker refuses audio longer than `max_tokens` covers. The proxy passes the bit on in
/// `ext.workerRunQuery` / `ext.workerRunSealedQuery` (and sends such a request to no older
/// worker), and the worker refuses a flagged request that is not a transcription, and a
/// transcription that is not flagged: otherwise a chat request carrying the bit would be
/// charged as audio (no completion tokens).
pub const AUDIO_UNITS_FLAG: u32 = 0x0100_0000;

/// The extension bits our decoders accept in the client's run-query flags.
pub const CLIENT_EXTENSION_FLAGS: u32 = WORKER_PREFERENCE_FLAGS | AUDIO_UNITS_FLAG;

/// Messages of the `tcp.` namespace.
pub mod tcp {
    #[allow(unused_imports)]
    use crate::tl::Int256;
    #[allow(unused_imports)]
    use bytes::Bytes;

    tl_struct! {
        /// Constructor `tcp.ping` of `tcp.Packet`.
        Ping = 0xbbe9627c, "tcp.ping id:long = tcp.Packet" {
            /// `id`.
            id: i64,
        }
    }

    tl_struct! {
        /// Constructor `tcp.pong` of `tcp.Packet`.
        Pong = 0x0bd4302c, "tcp.pong id:long = tcp.Packet" {
            /// `id`.
            id: i64,
        }
    }

    tl_struct! {
        /// Constructor `tcp.packet` of `tcp.Packet`.
        Packet = 0x9c17baf8, "tcp.packet data:bytes = tcp.Packet" {
            /// `data`.
            data: Bytes,
        }
    }

    tl_struct! {
        /// Constructor `tcp.queryAnswer` of `tcp.Packet`.
        QueryAnswer = 0xc048c311, "tcp.queryAnswer id:long data:bytes = tcp.Packet" {
            /// `id`.
            id: i64,
            /// `data`.
            data: Bytes,
        }
    }

    tl_struct! {
        /// Constructor `tcp.queryError` of `tcp.Packet`.
        QueryError = 0x4cd2f602, "tcp.queryError id:long code:int message:string = tcp.Packet" {
            /// `id`.
            id: i64,
            /// `code`.
            code: i32,
            /// `message`.
            message: String,
        }
    }

    tl_struct! {
        /// Constructor `tcp.query` of `tcp.Packet`.
        Query = 0x3af51908, "tcp.query id:long data:bytes = tcp.Packet" {
            /// `id`.
            id: i64,
            /// `data`.
            data: Bytes,
        }
    }

    tl_struct! {
        /// Constructor `tcp.connected` of `tcp.Packet`.
        Connected = 0x636d41d6, "tcp.connected id:long = tcp.Packet" {
            /// `id`.
            id: i64,
        }
    }

    tl_struct! {
        /// Constructor `tcp.connect` of `tcp.Packet`.
        Connect = 0xa57c4261, "tcp.connect id:long = tcp.Packet" {
            /// `id`.
            id: i64,
        }
    }

    tl_enum! {
        /// Boxed type `tcp.Packet`.
        AnyPacket, "tcp.Packet" {
            /// `tcp.ping`.
            Ping(Ping),
            /// `tcp.pong`.
            Pong(Pong),
            /// `tcp.packet`.
            Packet(Packet),
            /// `tcp.queryAnswer`.
            QueryAnswer(QueryAnswer),
            /// `tcp.queryError`.
            QueryError(QueryError),
            /// `tcp.query`.
            Query(Query),
            /// `tcp.connected`.
            Connected(Connected),
            /// `tcp.connect`.
            Connect(Connect),
        }
    }
}

tl_struct! {
    /// Constructor `tokensUsed` of `TokensUsed`.
    TokensUsed = 0x70c5b15c, "tokensUsed prompt_tokens_used:long cached_tokens_used:long completion_tokens_used:long reasoning_tokens_used:long total_tokens_used:long = TokensUsed" {
        /// `prompt_tokens_used`.
        prompt_tokens_used: i64,
        /// `cached_tokens_used`.
        cached_tokens_used: i64,
        /// `completion_tokens_used`.
        completion_tokens_used: i64,
        /// `reasoning_tokens_used`.
        reasoning_tokens_used: i64,
        /// `total_tokens_used`.
        total_tokens_used: i64,
    }
}

/// Messages of the `http.` namespace.
pub mod http {
    #[allow(unused_imports)]
    use crate::tl::Int256;
    #[allow(unused_imports)]
    use bytes::Bytes;

    tl_struct! {
        /// Constructor `http.header` of `http.Header`.
        Header = 0x8e9be511, "http.header name:string value:string = http.Header" {
            /// `name`.
            name: String,
            /// `value`.
            value: String,
        }
    }

    tl_struct! {
        /// Constructor `http.response` of `http.Response`.
        Response = 0x1cd0c42b, "http.response http_version:string status_code:int reason:string headers:vector http.header payload:bytes = http.Response" {
            /// `http_version`.
            http_version: String,
            /// `status_code`.
            status_code: i32,
            /// `reason`.
            reason: String,
            /// `headers`.
            headers: Vec<Header>,
            /// `payload`.
            payload: Bytes,
        }
    }

    tl_struct! {
        /// Function (query) `http.request`, answered by `http.Response`.
        Request = 0x47492de5, "http.request method:string url:string http_version:string headers:vector http.header payload:bytes = http.Response" {
            /// `method`.
            method: String,
            /// `url`.
            url: String,
            /// `http_version`.
            http_version: String,
            /// `headers`.
            headers: Vec<Header>,
            /// `payload`.
            payload: Bytes,
        }
    }
}

/// Messages of the `client.` namespace.
pub mod client {
    #[allow(unused_imports)]
    use crate::tl::Int256;
    #[allow(unused_imports)]
    use bytes::Bytes;

    tl_struct! {
        /// Constructor `client.params` of `client.Params`.
        Params = 0x40fdca64, "client.params flags:# client_owner_address:string is_test:flags.0?Bool min_proto_version:flags.1?int max_proto_version:flags.1?int = client.Params" {
            /// Flags: which optional fields are present.
            flags: u32,
            /// `client_owner_address`.
            client_owner_address: String,
            /// `is_test` (present with flag bit 0).
            is_test: bool => 0,
            /// `min_proto_version` (present with flag bit 1).
            min_proto_version: i32 => 1,
            /// `max_proto_version` (present with flag bit 1).
            max_proto_version: i32 => 1,
        }
    }

    tl_struct! {
        /// Constructor `client.proxyConnectionAuthShort` of `client.ProxyConnectionAuth`.
        ProxyConnectionAuthShort = 0xd6ffc5af, "client.proxyConnectionAuthShort secret_hash:int256 nonce:long = client.ProxyConnectionAuth" {
            /// `secret_hash`.
            secret_hash: Int256,
            /// `nonce`.
            nonce: i64,
        }
    }

    tl_struct! {
        /// Constructor `client.proxyConnectionAuthLong` of `client.ProxyConnectionAuth`.
        ProxyConnectionAuthLong = 0x417bf016, "client.proxyConnectionAuthLong nonce:long = client.ProxyConnectionAuth" {
            /// `nonce`.
            nonce: i64,
        }
    }

    tl_struct! {
        /// Constructor `client.authorizationWithProxySuccess` of `client.AuthorizationWithProxy`.
        AuthorizationWithProxySuccess = 0x75d5ac34, "client.authorizationWithProxySuccess signed_payment:proxy.SignedPayment tokens_committed_to_db:long max_tokens:long = client.AuthorizationWithProxy" {
            /// `signed_payment`.
            signed_payment: super::proxy::AnySignedPayment,
            /// `tokens_committed_to_db`.
            tokens_committed_to_db: i64,
            /// `max_tokens`.
            max_tokens: i64,
        }
    }

    tl_struct! {
        /// Constructor `client.authorizationWithProxyFailed` of `client.AuthorizationWithProxy`.
        AuthorizationWithProxyFailed = 0x60551c96, "client.authorizationWithProxyFailed error_code:int error:string = client.AuthorizationWithProxy" {
            /// `error_code`.
            error_code: i32,
            /// `error`.
            error: String,
        }
    }

    tl_struct! {
        /// Constructor `client.connectedToProxy` of `client.ConnectedToProxy`.
        ConnectedToProxy = 0x95317ad1, "client.connectedToProxy params:proxy.params client_sc_address:string auth:client.ProxyConnectionAuth signed_payment:proxy.SignedPayment = client.ConnectedToProxy" {
            /// `params`.
            params: super::proxy::Params,
            /// `client_sc_address`.
            client_sc_address: String,
            /// `auth`.
            auth: AnyProxyConnectionAuth,
            /// `signed_payment`.
            signed_payment: super::proxy::AnySignedPayment,
        }
    }

    tl_struct! {
        /// Constructor `client.queryAnswer` of `client.QueryAnswer`.
        QueryAnswer = 0x9b943922, "client.queryAnswer answer:bytes is_completed:Bool request_id:int256 request_tokens_used:tokensUsed = client.QueryAnswer" {
            /// `answer`.
            answer: Bytes,
            /// `is_completed`.
            is_completed: bool,
            /// `request_id`.
            request_id: Int256,
            /// `request_tokens_used`.
            request_tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `client.queryAnswerError` of `client.QueryAnswer`.
        QueryAnswerError = 0x6d60569a, "client.queryAnswerError error_code:int error:string request_id:int256 request_tokens_used:tokensUsed = client.QueryAnswer" {
            /// `error_code`.
            error_code: i32,
            /// `error`.
            error: String,
            /// `request_id`.
            request_id: Int256,
            /// `request_tokens_used`.
            request_tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `client.queryAnswerPart` of `client.QueryAnswerPart`.
        QueryAnswerPart = 0xb765de4c, "client.queryAnswerPart answer:bytes is_completed:Bool request_id:int256 request_tokens_used:tokensUsed = client.QueryAnswerPart" {
            /// `answer`.
            answer: Bytes,
            /// `is_completed`.
            is_completed: bool,
            /// `request_id`.
            request_id: Int256,
            /// `request_tokens_used`.
            request_tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `client.queryAnswerPartError` of `client.QueryAnswerPart`.
        QueryAnswerPartError = 0xd790a022, "client.queryAnswerPartError error_code:int error:string request_id:int256 request_tokens_used:tokensUsed = client.QueryAnswerPart" {
            /// `error_code`.
            error_code: i32,
            /// `error`.
            error: String,
            /// `request_id`.
            request_id: Int256,
            /// `request_tokens_used`.
            request_tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `client.queryFinalInfo` of `client.QueryFinalInfo`.
        QueryFinalInfo = 0x69a452f0, "client.queryFinalInfo flags:# tokens_used:tokensUsed worker_debug:flags.0?string proxy_debug:flags.0?string proxy_start_time:flags.1?double proxy_end_time:flags.1?double worker_start_time:flags.1?double worker_end_time:flags.1?double = client.QueryFinalInfo" {
            /// Flags: which optional fields are present.
            flags: u32,
            /// `tokens_used`.
            tokens_used: super::TokensUsed,
            /// `worker_debug` (present with flag bit 0).
            worker_debug: String => 0,
            /// `proxy_debug` (present with flag bit 0).
            proxy_debug: String => 0,
            /// `proxy_start_time` (present with flag bit 1).
            proxy_start_time: f64 => 1,
            /// `proxy_end_time` (present with flag bit 1).
            proxy_end_time: f64 => 1,
            /// `worker_start_time` (present with flag bit 1).
            worker_start_time: f64 => 1,
            /// `worker_end_time` (present with flag bit 1).
            worker_end_time: f64 => 1,
        }
    }

    tl_struct! {
        /// Constructor `client.queryAnswerEx` of `client.QueryAnswerEx`.
        QueryAnswerEx = 0xcd524720, "client.queryAnswerEx request_id:int256 answer:bytes flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx" {
            /// `request_id`.
            request_id: Int256,
            /// `answer`.
            answer: Bytes,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `final_info` (present with flag bit 0).
            final_info: QueryFinalInfo => 0,
        }
    }

    tl_struct! {
        /// Constructor `client.queryAnswerErrorEx` of `client.QueryAnswerEx`.
        QueryAnswerErrorEx = 0x072562a8, "client.queryAnswerErrorEx request_id:int256 error_code:int error:string flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx" {
            /// `request_id`.
            request_id: Int256,
            /// `error_code`.
            error_code: i32,
            /// `error`.
            error: String,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `final_info` (present with flag bit 0).
            final_info: QueryFinalInfo => 0,
        }
    }

    tl_struct! {
        /// Constructor `client.queryAnswerPartEx` of `client.QueryAnswerEx`.
        QueryAnswerPartEx = 0xc07bfaec, "client.queryAnswerPartEx request_id:int256 answer:bytes flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx" {
            /// `request_id`.
            request_id: Int256,
            /// `answer`.
            answer: Bytes,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `final_info` (present with flag bit 0).
            final_info: QueryFinalInfo => 0,
        }
    }

    tl_struct! {
        /// Constructor `client.refund` of `client.Refund`.
        Refund = 0x83aabead, "client.refund data:bytes = client.Refund" {
            /// `data`.
            data: Bytes,
        }
    }

    tl_struct! {
        /// Constructor `client.refundRejected` of `client.Refund`.
        RefundRejected = 0xcf9d9957, "client.refundRejected active_queries:long = client.Refund" {
            /// `active_queries`.
            active_queries: i64,
        }
    }

    tl_struct! {
        /// Constructor `client.workerType` of `client.WorkerType`.
        WorkerType = 0x8210e21c, "client.workerType name:string active_workers:int coefficient_min:int coefficient_bucket50:int coefficient_max:int = client.WorkerType" {
            /// `name`.
            name: String,
            /// `active_workers`.
            active_workers: i32,
            /// `coefficient_min`.
            coefficient_min: i32,
            /// `coefficient_bucket50`.
            coefficient_bucket50: i32,
            /// `coefficient_max`.
            coefficient_max: i32,
        }
    }

    tl_struct! {
        /// Constructor `client.workerTypes` of `client.WorkerTypes`.
        WorkerTypes = 0xf64e0e01, "client.workerTypes types:vector client.workerType = client.WorkerTypes" {
            /// `types`.
            types: Vec<WorkerType>,
        }
    }

    tl_struct! {
        /// Constructor `client.workerInstanceV2` of `client.WorkerInstanceV2`.
        WorkerInstanceV2 = 0x3ea93d00, "client.workerInstanceV2 flags:# coefficient:int active_requests:int max_active_requests:int = client.WorkerInstanceV2" {
            /// Flags: which optional fields are present.
            flags: u32,
            /// `coefficient`.
            coefficient: i32,
            /// `active_requests`.
            active_requests: i32,
            /// `max_active_requests`.
            max_active_requests: i32,
        }
    }

    tl_struct! {
        /// Constructor `client.workerTypeV2` of `client.WorkerTypeV2`.
        WorkerTypeV2 = 0xb27d8197, "client.workerTypeV2 name:string workers:vector client.workerInstanceV2 = client.WorkerTypeV2" {
            /// `name`.
            name: String,
            /// `workers`.
            workers: Vec<WorkerInstanceV2>,
        }
    }

    tl_struct! {
        /// Constructor `client.workerTypesV2` of `client.WorkerTypesV2`.
        WorkerTypesV2 = 0x0cf0dc67, "client.workerTypesV2 types:vector client.workerTypeV2 = client.WorkerTypesV2" {
            /// `types`.
            types: Vec<WorkerTypeV2>,
        }
    }

    tl_struct! {
        /// Constructor `client.paymentStatus` of `client.PaymentStatus`.
        PaymentStatus = 0xaa8a0ecc, "client.paymentStatus signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long = client.PaymentStatus" {
            /// `signed_payment`.
            signed_payment: super::proxy::AnySignedPayment,
            /// `db_tokens`.
            db_tokens: i64,
            /// `max_tokens`.
            max_tokens: i64,
        }
    }

    tl_struct! {
        /// Function (query) `client.connectToProxy`, answered by `client.ConnectedToProxy`.
        ConnectToProxy = 0xff5fa0f4, "client.connectToProxy params:client.params min_config_version:int = client.ConnectedToProxy" {
            /// `params`.
            params: Params,
            /// `min_config_version`.
            min_config_version: i32,
        }
    }

    tl_struct! {
        /// Function (query) `client.authorizeWithProxyShort`, answered by `client.AuthorizationWithProxy`.
        AuthorizeWithProxyShort = 0x6c276723, "client.authorizeWithProxyShort data:bytes = client.AuthorizationWithProxy" {
            /// `data`.
            data: Bytes,
        }
    }

    tl_struct! {
        /// Function (query) `client.authorizeWithProxyLong`, answered by `client.AuthorizationWithProxy`.
        AuthorizeWithProxyLong = 0xd3474303, "client.authorizeWithProxyLong = client.AuthorizationWithProxy" {
        }
    }

    tl_struct! {
        /// Function (query) `client.runQuery`, answered by `client.QueryAnswer`.
        RunQuery = 0xbc748f32, "client.runQuery model_name:string query:bytes max_coefficient:int max_tokens:int timeout:double request_id:int256 min_config_version:int = client.QueryAnswer" {
            /// `model_name`.
            model_name: String,
            /// `query`.
            query: Bytes,
            /// `max_coefficient`.
            max_coefficient: i32,
            /// `max_tokens`.
            max_tokens: i32,
            /// `timeout`.
            timeout: f64,
            /// `request_id`.
            request_id: Int256,
            /// `min_config_version`.
            min_config_version: i32,
        }
    }

    tl_struct! {
        /// Function (query) `client.runQueryEx`, answered by `client.QueryAnswerEx`.
        ///
        /// The id is pinned: it is the CRC32 of the declaration without `public_key`, which the
        /// reference added behind flag bit 1 (9060ce5) and pinned the id to keep.
        RunQueryEx = 0xf54cb74b, "client.runQueryEx model_name:string query:bytes max_coefficient:int max_tokens:int timeout:double request_id:int256 min_config_version:int flags:# enable_debug:flags.0?Bool public_key:flags.1?int256 = client.QueryAnswerEx" {
            extension_flags = crate::messages::CLIENT_EXTENSION_FLAGS;
            /// `model_name`.
            model_name: String,
            /// `query`.
            query: Bytes,
            /// `max_coefficient`.
            max_coefficient: i32,
            /// `max_tokens`.
            max_tokens: i32,
            /// `timeout`.
            timeout: f64,
            /// `request_id`.
            request_id: Int256,
            /// `min_config_version`.
            min_config_version: i32,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `enable_debug` (present with flag bit 0).
            enable_debug: bool => 0,
            /// `public_key` (present with flag bit 1): the client's Ed25519 public key for the
            /// reference's "v1" request encryption.
            public_key: Int256 => 1,
        }
    }

    tl_struct! {
        /// Function (query) `client.requestRefund`, answered by `client.Refund`.
        RequestRefund = 0x238d863d, "client.requestRefund = client.Refund" {
        }
    }

    tl_struct! {
        /// Function (query) `client.updatePaymentStatus`, answered by `client.PaymentStatus`.
        UpdatePaymentStatus = 0x9ed1c697, "client.updatePaymentStatus = client.PaymentStatus" {
        }
    }

    tl_struct! {
        /// Function (query) `client.getWorkerTypes`, answered by `client.WorkerTypes`.
        GetWorkerTypes = 0x7f062bdb, "client.getWorkerTypes = client.WorkerTypes" {
        }
    }

    tl_struct! {
        /// Function (query) `client.getWorkerTypesV2`, answered by `client.WorkerTypesV2`.
        GetWorkerTypesV2 = 0xb2133d72, "client.getWorkerTypesV2 = client.WorkerTypesV2" {
        }
    }

    tl_enum! {
        /// Boxed type `client.ProxyConnectionAuth`.
        AnyProxyConnectionAuth, "client.ProxyConnectionAuth" {
            /// `client.proxyConnectionAuthShort`.
            ProxyConnectionAuthShort(ProxyConnectionAuthShort),
            /// `client.proxyConnectionAuthLong`.
            ProxyConnectionAuthLong(ProxyConnectionAuthLong),
        }
    }

    tl_enum! {
        /// Boxed type `client.AuthorizationWithProxy`.
        AnyAuthorizationWithProxy, "client.AuthorizationWithProxy" {
            /// `client.authorizationWithProxySuccess`.
            AuthorizationWithProxySuccess(AuthorizationWithProxySuccess),
            /// `client.authorizationWithProxyFailed`.
            AuthorizationWithProxyFailed(AuthorizationWithProxyFailed),
        }
    }

    tl_enum! {
        /// Boxed type `client.QueryAnswer`.
        AnyQueryAnswer, "client.QueryAnswer" {
            /// `client.queryAnswer`.
            QueryAnswer(QueryAnswer),
            /// `client.queryAnswerError`.
            QueryAnswerError(QueryAnswerError),
        }
    }

    tl_enum! {
        /// Boxed type `client.QueryAnswerPart`.
        AnyQueryAnswerPart, "client.QueryAnswerPart" {
            /// `client.queryAnswerPart`.
            QueryAnswerPart(QueryAnswerPart),
            /// `client.queryAnswerPartError`.
            QueryAnswerPartError(QueryAnswerPartError),
        }
    }

    tl_enum! {
        /// Boxed type `client.QueryAnswerEx`.
        AnyQueryAnswerEx, "client.QueryAnswerEx" {
            /// `client.queryAnswerEx`.
            QueryAnswerEx(QueryAnswerEx),
            /// `client.queryAnswerErrorEx`.
            QueryAnswerErrorEx(QueryAnswerErrorEx),
            /// `client.queryAnswerPartEx`.
            QueryAnswerPartEx(QueryAnswerPartEx),
        }
    }

    tl_enum! {
        /// Boxed type `client.Refund`.
        AnyRefund, "client.Refund" {
            /// `client.refund`.
            Refund(Refund),
            /// `client.refundRejected`.
            RefundRejected(RefundRejected),
        }
    }

    /// `error_code` of `client.authorizationWithProxyFailed` while the proxy has not yet seen
    /// the client contract's `register` log with this session's nonce: register it on chain
    /// (or wait for the registration to land) and authorize again on the same session.
    pub const NOT_YET_REGISTERED_ERROR_CODE: i32 = 425;

    /// `error_code` of `client.authorizationWithProxyFailed` when the session's nonce was not
    /// seen registered on chain in time: connect again for a fresh nonce.
    pub const REGISTRATION_EXPIRED_ERROR_CODE: i32 = 408;

    /// `error_code` of `client.authorizationWithProxyFailed` for long authorization of an
    /// owner that has a short-auth secret at the proxy: only that secret authorizes it.
    pub const SHORT_AUTH_REQUIRED_ERROR_CODE: i32 = 403;
}

/// Messages of the `proxy.` namespace.
pub mod proxy {
    #[allow(unused_imports)]
    use crate::tl::Int256;
    #[allow(unused_imports)]
    use bytes::Bytes;

    tl_struct! {
        /// Constructor `proxy.params` of `proxy.Params`.
        Params = 0xd5c5609f, "proxy.params flags:# proxy_public_key:int256 proxy_owner_address:string proxy_sc_address:string is_test:flags.0?Bool proto_version:flags.1?int = proxy.Params" {
            /// Flags: which optional fields are present.
            flags: u32,
            /// `proxy_public_key`.
            proxy_public_key: Int256,
            /// `proxy_owner_address`.
            proxy_owner_address: String,
            /// `proxy_sc_address`.
            proxy_sc_address: String,
            /// `is_test` (present with flag bit 0).
            is_test: bool => 0,
            /// `proto_version` (present with flag bit 1).
            proto_version: i32 => 1,
        }
    }

    tl_struct! {
        /// Constructor `proxy.clientRequestPayment` of `proxy.WorkerRequestPayment`.
        ClientRequestPayment = 0xc6bcf127, "proxy.clientRequestPayment request_id:int256 signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long request_tokens:long = proxy.WorkerRequestPayment" {
            /// `request_id`.
            request_id: Int256,
            /// `signed_payment`.
            signed_payment: AnySignedPayment,
            /// `db_tokens`.
            db_tokens: i64,
            /// `max_tokens`.
            max_tokens: i64,
            /// `request_tokens`.
            request_tokens: i64,
        }
    }

    tl_struct! {
        /// Constructor `proxy.signedPayment` of `proxy.SignedPayment`.
        SignedPayment = 0x02998182, "proxy.signedPayment data:bytes = proxy.SignedPayment" {
            /// `data`.
            data: Bytes,
        }
    }

    tl_struct! {
        /// Constructor `proxy.signedPaymentEmpty` of `proxy.SignedPayment`.
        SignedPaymentEmpty = 0xb347ce64, "proxy.signedPaymentEmpty = proxy.SignedPayment" {
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryAnswer` of `proxy.QueryAnswer`.
        QueryAnswer = 0x37e5f725, "proxy.queryAnswer answer:bytes is_completed:Bool request_id:int256 tokens_used:tokensUsed = proxy.QueryAnswer" {
            /// `answer`.
            answer: Bytes,
            /// `is_completed`.
            is_completed: bool,
            /// `request_id`.
            request_id: Int256,
            /// `tokens_used`.
            tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryAnswerError` of `proxy.QueryAnswer`.
        QueryAnswerError = 0x669d014e, "proxy.queryAnswerError error_code:int error:string request_id:int256 tokens_used:tokensUsed = proxy.QueryAnswer" {
            /// `error_code`.
            error_code: i32,
            /// `error`.
            error: String,
            /// `request_id`.
            request_id: Int256,
            /// `tokens_used`.
            tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryAnswerPart` of `proxy.QueryAnswerPart`.
        QueryAnswerPart = 0x72eb00ee, "proxy.queryAnswerPart answer:bytes is_completed:Bool request_id:int256 tokens_used:tokensUsed = proxy.QueryAnswerPart" {
            /// `answer`.
            answer: Bytes,
            /// `is_completed`.
            is_completed: bool,
            /// `request_id`.
            request_id: Int256,
            /// `tokens_used`.
            tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryAnswerPartError` of `proxy.QueryAnswerPart`.
        QueryAnswerPartError = 0x940e1168, "proxy.queryAnswerPartError error_code:int error:string request_id:int256 tokens_used:tokensUsed = proxy.QueryAnswerPart" {
            /// `error_code`.
            error_code: i32,
            /// `error`.
            error: String,
            /// `request_id`.
            request_id: Int256,
            /// `tokens_used`.
            tokens_used: super::TokensUsed,
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryFinalInfo` of `proxy.QueryFinalInfo`.
        QueryFinalInfo = 0xe794e6fc, "proxy.queryFinalInfo flags:# tokens_used:tokensUsed worker_debug:flags.0?string worker_start_time:flags.1?double worker_end_time:flags.1?double = proxy.QueryFinalInfo" {
            /// Flags: which optional fields are present.
            flags: u32,
            /// `tokens_used`.
            tokens_used: super::TokensUsed,
            /// `worker_debug` (present with flag bit 0).
            worker_debug: String => 0,
            /// `worker_start_time` (present with flag bit 1).
            worker_start_time: f64 => 1,
            /// `worker_end_time` (present with flag bit 1).
            worker_end_time: f64 => 1,
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryAnswerEx` of `proxy.QueryAnswerEx`.
        QueryAnswerEx = 0x1ce574e8, "proxy.queryAnswerEx request_id:int256 answer:bytes flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx" {
            /// `request_id`.
            request_id: Int256,
            /// `answer`.
            answer: Bytes,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `final_info` (present with flag bit 0).
            final_info: QueryFinalInfo => 0,
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryAnswerErrorEx` of `proxy.QueryAnswerEx`.
        QueryAnswerErrorEx = 0x8f7fb0a7, "proxy.queryAnswerErrorEx request_id:int256 error_code:int error:string flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx" {
            /// `request_id`.
            request_id: Int256,
            /// `error_code`.
            error_code: i32,
            /// `error`.
            error: String,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `final_info` (present with flag bit 0).
            final_info: QueryFinalInfo => 0,
        }
    }

    tl_struct! {
        /// Constructor `proxy.queryAnswerPartEx` of `proxy.QueryAnswerEx`.
        QueryAnswerPartEx = 0x6d85b50f, "proxy.queryAnswerPartEx request_id:int256 answer:bytes flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx" {
            /// `request_id`.
            request_id: Int256,
            /// `answer`.
            answer: Bytes,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `final_info` (present with flag bit 0).
            final_info: QueryFinalInfo => 0,
        }
    }

    tl_struct! {
        /// Constructor `proxy.workerRequestPayment` of `proxy.WorkerRequestPayment`.
        WorkerRequestPayment = 0x1436c0d5, "proxy.workerRequestPayment request_id:int256 signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long request_tokens:long request_client_owner:string = proxy.WorkerRequestPayment" {
            /// `request_id`.
            request_id: Int256,
            /// `signed_payment`.
            signed_payment: AnySignedPayment,
            /// `db_tokens`.
            db_tokens: i64,
            /// `max_tokens`.
            max_tokens: i64,
            /// `request_tokens`.
            request_tokens: i64,
            /// `request_client_owner`.
            request_client_owner: String,
        }
    }

    tl_struct! {
        /// Function (query) `proxy.runQuery`, answered by `proxy.QueryAnswer`.
        RunQuery = 0x47182416, "proxy.runQuery query:bytes signed_payment:proxy.SignedPayment coefficient:long timeout:double request_id:int256 = proxy.QueryAnswer" {
            /// `query`.
            query: Bytes,
            /// `signed_payment`.
            signed_payment: AnySignedPayment,
            /// `coefficient`.
            coefficient: i64,
            /// `timeout`.
            timeout: f64,
            /// `request_id`.
            request_id: Int256,
        }
    }

    tl_struct! {
        /// Function (query) `proxy.runQueryEx`, answered by `proxy.QueryAnswer`.
        ///
        /// The id is pinned: it is the CRC32 of the declaration without `private_key`, which the
        /// reference added behind flag bit 1 (9060ce5) and pinned the id to keep.
        RunQueryEx = 0xc805e7e2, "proxy.runQueryEx query:bytes signed_payment:proxy.SignedPayment coefficient:long timeout:double request_id:int256 flags:# enable_debug:flags.0?Bool private_key:flags.1?int256 = proxy.QueryAnswer" {
            /// `query`.
            query: Bytes,
            /// `signed_payment`.
            signed_payment: AnySignedPayment,
            /// `coefficient`.
            coefficient: i64,
            /// `timeout`.
            timeout: f64,
            /// `request_id`.
            request_id: Int256,
            /// Flags: which optional fields are present.
            flags: u32,
            /// `enable_debug` (present with flag bit 0).
            enable_debug: bool => 0,
            /// `private_key` (present with flag bit 1): the receiver's Ed25519 private key, handed
            /// to the worker by a reference proxy for the "v1" request encryption.
            private_key: Int256 => 1,
        }
    }

    tl_enum! {
        /// Boxed type `proxy.WorkerRequestPayment`.
        AnyWorkerRequestPayment, "proxy.WorkerRequestPayment" {
            /// `proxy.clientRequestPayment`.
            ClientRequestPayment(ClientRequestPayment),
            /// `proxy.workerRequestPayment`.
            WorkerRequestPayment(WorkerRequestPayment),
        }
    }

    tl_enum! {
        /// Boxed type `proxy.SignedPayment`.
        AnySignedPayment, "proxy.SignedPayment" {
            /// `proxy.signedPayment`.
            SignedPayment(SignedPayment),
            /// `proxy.signedPaymentEmpty`.
            SignedPaymentEmpty(SignedPaymentEmpty),
        }
    }

    tl_enum! {
        /// Boxed type `proxy.QueryAnswer`.
        AnyQueryAnswer, "proxy.QueryAnswer" {
            /// `proxy.queryAnswer`.
            QueryAnswer(QueryAnswer),
            /// `proxy.queryAnswerError`.
            QueryAnswerError(QueryAnswerError),
        }
    }

    tl_enum! {
        /// Boxed type `proxy.QueryAnswerPart`.
        AnyQueryAnswerPart, "proxy.QueryAnswerPart" {
            /// `proxy.queryAnswerPart`.
            QueryAnswerPart(QueryAnswerPart),
            /// `proxy.queryAnswerPartError`.
            QueryAnswerPartError(QueryAnswerPartError),
        }
    }

    tl_enum! {
        /// Boxed type `proxy.QueryAnswerEx`.
        AnyQueryAnswerEx, "proxy.QueryAnswerEx" {
            /// `proxy.queryAnswerEx`.
            QueryAnswerEx(QueryAnswerEx),
            /// `proxy.queryAnswerErrorEx`.
            QueryAnswerErrorEx(QueryAnswerErrorEx),
            /// `proxy.queryAnswerPartEx`.
            QueryAnswerPartEx(QueryAnswerPartEx),
        }
    }
}

/// Messages of the `worker.` namespace.
pub mod worker {
    #[allow(unused_imports)]
    use crate::tl::Int256;
    #[allow(unused_imports)]
    use bytes::Bytes;

    tl_struct! {
        /// Constructor `worker.params` of `worker.Params`.
        Params = 0x869c73ed, "worker.params flags:# worker_owner_address:string model:string coefficient:int is_test:flags.0?Bool proxy_cnt:flags.0?int max_active_requests:flags.0?int min_proto_version:flags.1?int max_proto_version:flags.1?int machine_description_json:flags.2?string = worker.Params" {
            /// Flags: which optional fields are present.
            flags: u32,
            /// `worker_owner_address`.
            worker_owner_address: String,
            /// `model`.
            model: String,
            /// `coefficient`.
            coefficient: i32,
            /// `is_test` (present with flag bit 0).
            is_test: bool => 0,
            /// `proxy_cnt` (present with flag bit 0).
            proxy_cnt: i32 => 0,
            /// `max_active_requests` (present with flag bit 0).
            max_active_requests: i32 => 0,
            /// `min_proto_version` (present with flag bit 1).
            min_proto_version: i32 => 1,
            /// `max_proto_version` (present with flag bit 1).
            max_proto_version: i32 => 1,
            /// `machine_description_json` (present with flag bit 2): the worker's own account of
            /// its machine (a JSON object). Self-reported, so for display only.
            machine_description_json: String => 2,
        }
    }

    tl_struct! {
        /// Constructor `worker.enabledDisabled` of `worker.EnabledDisabled`.
        EnabledDisabled = 0xb3b71039, "worker.enabledDisabled disabled:int = worker.EnabledDisabled" {
            /// `disabled`.
            disabled: i32,
        }
    }

    tl_struct! {
        /// Constructor `worker.newCoefficient` of `worker.NewCoefficient`.
        NewCoefficient = 0x6af092b0, "worker.newCoefficient new_coefficient:int = worker.NewCoefficient" {
            /// `new_coefficient`.
            new_coefficient: i32,
        }
    }

    tl_struct! {
        /// Constructor `worker.connectedToProxy` of `worker.ConnectedToProxy`.
        ConnectedToProxy = 0x66bc82ee, "worker.connectedToProxy params:proxy.params worker_sc_address:string = worker.ConnectedToProxy" {
            /// `params`.
            params: super::proxy::Params,
            /// `worker_sc_address`.
            worker_sc_address: String,
        }
    }

    tl_struct! {
        /// Constructor `worker.compareBalanceWithProxyResult` of `worker.CompareBalanceWithProxyResult`.
        CompareBalanceWithProxyResult = 0x9054c411, "worker.compareBalanceWithProxyResult signed_payment:proxy.SignedPayment tokens_committed_to_db:long max_tokens:long error_code:int = worker.CompareBalanceWithProxyResult" {
            /// `signed_payment`.
            signed_payment: super::proxy::AnySignedPayment,
            /// `tokens_committed_to_db`.
            tokens_committed_to_db: i64,
            /// `max_tokens`.
            max_tokens: i64,
            /// `error_code`.
            error_code: i32,
        }
    }

    tl_struct! {
        /// Constructor `worker.extendedCompareBalanceWithProxyResult` of `worker.ExtendedCompareBalanceWithProxyResult`.
        ExtendedCompareBalanceWithProxyResult = 0x0c10973e, "worker.extendedCompareBalanceWithProxyResult error_code:int = worker.ExtendedCompareBalanceWithProxyResult" {
            /// `error_code`.
            error_code: i32,
        }
    }

    tl_struct! {
        /// Constructor `worker.proxyHandshakeCompleted` of `worker.HandshakeCompleted`.
        ProxyHandshakeCompleted = 0x3ad9b886, "worker.proxyHandshakeCompleted = worker.HandshakeCompleted" {
        }
    }

    tl_struct! {
        /// Constructor `worker.paymentStatus` of `worker.PaymentStatus`.
        PaymentStatus = 0xa88bd701, "worker.paymentStatus signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long = worker.PaymentStatus" {
            /// `signed_payment`.
            signed_payment: super::proxy::AnySignedPayment,
            /// `db_tokens`.
            db_tokens: i64,
            /// `max_tokens`.
            max_tokens: i64,
        }
    }

    tl_struct! {
        /// Function (query) `worker.connectToProxy`, answered by `worker.ConnectedToProxy`.
        ConnectToProxy = 0xcc484c5d, "worker.connectToProxy params:worker.params = worker.ConnectedToProxy" {
            /// `params`.
            params: Params,
        }
    }

    tl_struct! {
        /// Function (query) `worker.compareBalanceWithProxy`, answered by `worker.CompareBalanceWithProxyResult`.
        CompareBalanceWithProxy = 0xdb386501, "worker.compareBalanceWithProxy tokens_committed_to_blockchain:long tokens_committed_to_db:long max_tokens:long = worker.CompareBalanceWithProxyResult" {
            /// `tokens_committed_to_blockchain`.
            tokens_committed_to_blockchain: i64,
            /// `tokens_committed_to_db`.
            tokens_committed_to_db: i64,
            /// `max_tokens`.
            max_tokens: i64,
        }
    }

    tl_struct! {
        /// Function (query) `worker.extendedCompareBalanceWithProxy`, answered by `worker.ExtendedCompareBalanceWithProxyResult`.
        ExtendedCompareBalanceWithProxy = 0xf8dd9914, "worker.extendedCompareBalanceWithProxy tokens_committed_to_db:long other:bytes = worker.ExtendedCompareBalanceWithProxyResult" {
            /// `tokens_committed_to_db`.
            tokens_committed_to_db: i64,
            /// `other`.
            other: Bytes,
        }
    }

    tl_struct! {
        /// Function (query) `worker.proxyHandshakeComplete`, answered by `worker.HandshakeCompleted`.
        ProxyHandshakeComplete = 0xf843b066, "worker.proxyHandshakeComplete is_disabled:Bool = worker.HandshakeCompleted" {
            /// `is_disabled`.
            is_disabled: bool,
        }
    }

    tl_struct! {
        /// Function (query) `worker.updatePaymentStatus`, answered by `worker.PaymentStatus`.
        UpdatePaymentStatus = 0xdc70a524, "worker.updatePaymentStatus = worker.PaymentStatus" {
        }
    }

    tl_struct! {
        /// Constructor `worker.changedModel` of `worker.ChangedModel`: the answer to
        /// [`ChangeModel`] once the worker serves the new model.
        ///
        /// The reference declares it without fields, so it carries none: the model now served is
        /// the `new_model` of the query it answers (a worker that cannot switch answers with
        /// `tcp.queryError` instead).
        ChangedModel = 0x34029366, "worker.changedModel = worker.ChangedModel" {
        }
    }

    tl_struct! {
        /// Function (query) `worker.changeModel`, answered by `worker.ChangedModel`: the proxy
        /// asks the worker to serve another model from now on (reference 9060ce5).
        ChangeModel = 0x72662cee, "worker.changeModel new_model:string = worker.ChangedModel" {
            /// `new_model`.
            new_model: String,
        }
    }
}

/// The reference's TL form of the root contract's configuration (`rootConfig.`): what its nodes
/// read from the chain, not a message between nodes, so it is not part of [`Message`].
///
/// Field layout: `configV5` as the reference at b75d444 declares it, and `configV7`, which
/// (reference 9060ce5) adds the key-manager fields between `min_client_stake` and
/// `proxy_sc_code`. The result type name `rootConfig.Config` is ours and the ids are the CRC32 of
/// these lines; the reference never sends these on a connection, so no peer checks them.
/// `*_sc_code` fields are TL `string` on the wire but held as bytes: a contract's code need not
/// be UTF-8.
pub mod root_config {
    #[allow(unused_imports)]
    use crate::tl::Int256;
    #[allow(unused_imports)]
    use bytes::Bytes;

    tl_struct! {
        /// Constructor `rootConfig.registeredProxy`: a proxy the root contract lists.
        RegisteredProxy = 0x9f4e446a, "rootConfig.registeredProxy seqno:int address:string = rootConfig.RegisteredProxy" {
            /// `seqno`.
            seqno: i32,
            /// `address`.
            address: String,
        }
    }

    tl_struct! {
        /// Constructor `rootConfig.registeredPublicKey`: a key the root contract registers for
        /// the reference's key manager, with its type and expiry (unix time).
        RegisteredPublicKey = 0x37312ecd, "rootConfig.registeredPublicKey public_key:int256 key_type:int expire_at:int = rootConfig.RegisteredPublicKey" {
            /// `public_key`.
            public_key: Int256,
            /// `key_type`.
            key_type: i32,
            /// `expire_at`.
            expire_at: i32,
        }
    }

    tl_struct! {
        /// Constructor `rootConfig.configV5` (reference b75d444).
        ConfigV5 = 0x5e84869b, "rootConfig.configV5 root_owner_address:string proxy_hashes:vector int256 registered_proxies:vector rootConfig.registeredProxy last_proxy_seqno:int worker_hashes:vector int256 model_hashes:vector int256 version:int struct_version:int params_version:int unique_id:int is_test:int price_per_token:long worker_fee_per_token:long prompt_tokens_price_multiplier:int cached_tokens_price_multiplier:int completion_tokens_price_multiplier:int reasoning_tokens_price_multiplier:int proxy_delay_before_close:int client_delay_before_close:int min_proxy_stake:long min_client_stake:long proxy_sc_code:string worker_sc_code:string client_sc_code:string = rootConfig.Config" {
            /// `root_owner_address`.
            root_owner_address: String,
            /// `proxy_hashes`.
            proxy_hashes: Vec<Int256>,
            /// `registered_proxies`.
            registered_proxies: Vec<RegisteredProxy>,
            /// `last_proxy_seqno`.
            last_proxy_seqno: i32,
            /// `worker_hashes`.
            worker_hashes: Vec<Int256>,
            /// `model_hashes`.
            model_hashes: Vec<Int256>,
            /// `version`.
            version: i32,
            /// `struct_version`.
            struct_version: i32,
            /// `params_version`.
            params_version: i32,
            /// `unique_id`.
            unique_id: i32,
            /// `is_test`.
            is_test: i32,
            /// `price_per_token`.
            price_per_token: i64,
            /// `worker_fee_per_token`.
            worker_fee_per_token: i64,
            /// `prompt_tokens_price_multiplier`.
            prompt_tokens_price_multiplier: i32,
            /// `cached_tokens_price_multiplier`.
            cached_tokens_price_multiplier: i32,
            /// `completion_tokens_price_multiplier`.
            completion_tokens_price_multiplier: i32,
            /// `reasoning_tokens_price_multiplier`.
            reasoning_tokens_price_multiplier: i32,
            /// `proxy_delay_before_close`.
            proxy_delay_before_close: i32,
            /// `client_delay_before_close`.
            client_delay_before_close: i32,
            /// `min_proxy_stake`.
            min_proxy_stake: i64,
            /// `min_client_stake`.
            min_client_stake: i64,
            /// `proxy_sc_code`.
            proxy_sc_code: Bytes,
            /// `worker_sc_code`.
            worker_sc_code: Bytes,
            /// `client_sc_code`.
            client_sc_code: Bytes,
        }
    }

    tl_struct! {
        /// Constructor `rootConfig.configV7` (reference 9060ce5): `configV5` plus the key
        /// manager's registered keys, identity and the verified key lists.
        ConfigV7 = 0xc51207cb, "rootConfig.configV7 root_owner_address:string proxy_hashes:vector int256 registered_proxies:vector rootConfig.registeredProxy last_proxy_seqno:int worker_hashes:vector int256 model_hashes:vector int256 version:int struct_version:int params_version:int unique_id:int is_test:int price_per_token:long worker_fee_per_token:long prompt_tokens_price_multiplier:int cached_tokens_price_multiplier:int completion_tokens_price_multiplier:int reasoning_tokens_price_multiplier:int proxy_delay_before_close:int client_delay_before_close:int min_proxy_stake:long min_client_stake:long registered_public_keys:vector rootConfig.registeredPublicKey key_manager_public_key:int256 key_manager_image_hash:int256 key_manager_address:string verified_proxy_keys:vector int256 verified_worker_keys:vector int256 verified_key_manager_keys:vector int256 proxy_sc_code:string worker_sc_code:string client_sc_code:string = rootConfig.Config" {
            /// `root_owner_address`.
            root_owner_address: String,
            /// `proxy_hashes`.
            proxy_hashes: Vec<Int256>,
            /// `registered_proxies`.
            registered_proxies: Vec<RegisteredProxy>,
            /// `last_proxy_seqno`.
            last_proxy_seqno: i32,
            /// `worker_hashes`.
            worker_hashes: Vec<Int256>,
            /// `model_hashes`.
            model_hashes: Vec<Int256>,
            /// `version`.
            version: i32,
            /// `struct_version`.
            struct_version: i32,
            /// `params_version`.
            params_version: i32,
            /// `unique_id`.
            unique_id: i32,
            /// `is_test`.
            is_test: i32,
            /// `price_per_token`.
            price_per_token: i64,
            /// `worker_fee_per_token`.
            worker_fee_per_token: i64,
            /// `prompt_tokens_price_multiplier`.
            prompt_tokens_price_multiplier: i32,
            /// `cached_tokens_price_multiplier`.
            cached_tokens_price_multiplier: i32,
            /// `completion_tokens_price_multiplier`.
            completion_tokens_price_multiplier: i32,
            /// `reasoning_tokens_price_multiplier`.
            reasoning_tokens_price_multiplier: i32,
            /// `proxy_delay_before_close`.
            proxy_delay_before_close: i32,
            /// `client_delay_before_close`.
            client_delay_before_close: i32,
            /// `min_proxy_stake`.
            min_proxy_stake: i64,
            /// `min_client_stake`.
            min_client_stake: i64,
            /// `registered_public_keys`.
            registered_public_keys: Vec<RegisteredPublicKey>,
            /// `key_manager_public_key`.
            key_manager_public_key: Int256,
            /// `key_manager_image_hash`.
            key_manager_image_hash: Int256,
            /// `key_manager_address`.
            key_manager_address: String,
            /// `verified_proxy_keys`.
            verified_proxy_keys: Vec<Int256>,
            /// `verified_worker_keys`.
            verified_worker_keys: Vec<Int256>,
            /// `verified_key_manager_keys`.
            verified_key_manager_keys: Vec<Int256>,
            /// `proxy_sc_code`.
            proxy_sc_code: Bytes,
            /// `worker_sc_code`.
            worker_sc_code: Bytes,
            /// `client_sc_code`.
            client_sc_code: Bytes,
        }
    }

    tl_enum! {
        /// Boxed type `rootConfig.Config`: either version of the root configuration.
        AnyConfig, "rootConfig.Config" {
            /// `rootConfig.configV5`.
            ConfigV5(ConfigV5),
            /// `rootConfig.configV7`.
            ConfigV7(ConfigV7),
        }
    }
}

/// This project's extensions to the reference protocol, sent only to peers that negotiated
/// version 3 or later.
pub mod ext {
    #[allow(unused_imports)]
    use crate::tl::Int256;
    use bytes::Bytes;

    tl_struct! {
        /// Stops a request whose answer nobody will read any more (the HTTP caller went away or
        /// its timer fired): client → proxy with the client's request id, proxy → worker with
        /// the proxy's. The worker stops generating and acknowledges with a
        /// `proxy.queryAnswerErrorEx` of code [`CANCELLED_ERROR_CODE`] carrying its usage so
        /// far. Sent as `tcp.packet`.
        CancelQuery = 0x46a14330, "ext.cancelQuery request_id:int256 = ext.Cancel" {
            /// The request to stop.
            request_id: Int256,
        }
    }

    tl_struct! {
        /// Proxy → client, before the last part of an answer: what the request cost, so the
        /// client can report it with the answer. Sent as `tcp.packet`.
        QueryCost = 0x031611bd, "ext.queryCost request_id:int256 coefficient:int prompt_cost:long completion_cost:long total_cost:long = ext.QueryCost" {
            /// The client's request id.
            request_id: Int256,
            /// The coefficient of the worker that served it (1000 = 1.0×).
            coefficient: i32,
            /// NanoTON charged for prompt and cached tokens.
            prompt_cost: i64,
            /// NanoTON charged for completion and reasoning tokens.
            completion_cost: i64,
            /// NanoTON charged in all.
            total_cost: i64,
        }
    }

    tl_struct! {
        /// Worker → proxy → client, before the last part of an answer: the worker's signed
        /// receipt for the request (`cocoon_attest::Receipt` bytes), with the proxy's request id
        /// towards the proxy and the client's towards the client. Sent as `tcp.packet`.
        QueryReceipt = 0x2e7a73f9, "ext.queryReceipt request_id:int256 receipt:bytes = ext.QueryReceipt" {
            /// The request.
            request_id: Int256,
            /// The encoded receipt.
            receipt: Bytes,
        }
    }

    tl_struct! {
        /// Worker → proxy, once after the handshake of a version 3 session: the worker's RA-TLS
        /// certificate (DER), whose attested claims carry its X25519 sealing key. The proxy
        /// checks it against the certificate of the session and relays it to clients. Sent as
        /// `tcp.packet`.
        WorkerAttestation = 0x7d10fd0a, "ext.workerAttestation certificate:bytes = ext.WorkerAttestation" {
            /// The certificate, DER.
            certificate: Bytes,
        }
    }

    tl_struct! {
        /// Function (query) client → proxy: the attestation bundles of the workers serving a
        /// model (its base name, before any `@`), answered by `ext.workerKeys`.
        GetWorkerKeys = 0x08300c3a, "ext.getWorkerKeys model_name:string = ext.WorkerKeys" {
            /// The model.
            model_name: String,
        }
    }

    tl_struct! {
        /// One worker's attestation bundle: the proxy's id for the worker and the worker's
        /// RA-TLS certificate (DER) with its evidence and claims, sealing key included.
        WorkerKey = 0xa70a7ae6, "ext.workerKey worker_id:long certificate:bytes = ext.WorkerKey" {
            /// The proxy's id of the worker, named in `ext.runSealedQuery` candidates.
            worker_id: i64,
            /// The worker's certificate, DER.
            certificate: Bytes,
        }
    }

    tl_struct! {
        /// The answer to `ext.getWorkerKeys`.
        WorkerKeys = 0x216dd350, "ext.workerKeys keys:vector ext.workerKey = ext.WorkerKeys" {
            /// One bundle per worker (bare `ext.workerKey` items).
            keys: Vec<WorkerKey>,
        }
    }

    tl_struct! {
        /// Client → proxy: a request whose `http.request` is sealed (`cocoon_seal` envelope) to
        /// the sealing keys of the candidate workers. Only what the proxy needs is in clear: the
        /// model, the candidates, the price limit, the token limit for the reservation, the
        /// timeout and the request id. Answered like `client.runQueryEx`, the answer bytes being
        /// a sealed chunk stream. Sent as `tcp.packet`.
        RunSealedQuery = 0x02255d51, "ext.runSealedQuery model_name:string envelope:bytes candidates:vector long max_coefficient:int max_tokens:int timeout:double request_id:int256 flags:# enable_debug:flags.0?Bool = client.QueryAnswerEx" {
            extension_flags = crate::messages::CLIENT_EXTENSION_FLAGS;
            /// The model (routing).
            model_name: String,
            /// The sealed `http.request`.
            envelope: Bytes,
            /// The proxy's ids of the workers the envelope is addressed to.
            candidates: Vec<i64>,
            /// Highest coefficient accepted (1000 = 1.0×).
            max_coefficient: i32,
            /// Longest answer in tokens (sizes the reservation).
            max_tokens: i32,
            /// Time the request may take, in seconds.
            timeout: f64,
            /// The client's request id.
            request_id: Int256,
            /// Flags: which optional fields are present.
            flags: u32,
            /// Ask for debug information (present with flag bit 0).
            enable_debug: bool => 0,
        }
    }

    tl_struct! {
        /// Proxy → worker (version 3): a request in clear with the token limit the proxy
        /// reserved for it, which the worker enforces (it clamps or refuses `max_tokens` above
        /// it, counting `n` and `best_of`). Answered like `proxy.runQueryEx`. Sent as
        /// `tcp.packet`.
        WorkerRunQuery = 0x6f214815, "ext.workerRunQuery query:bytes coefficient:long timeout:double request_id:int256 client_request_id:int256 token_limit:long flags:# enable_debug:flags.0?Bool = proxy.QueryAnswerEx" {
            extension_flags = crate::messages::AUDIO_UNITS_FLAG;
            /// The `http.request`.
            query: Bytes,
            /// The worker's coefficient as the proxy prices it.
            coefficient: i64,
            /// Time left, in seconds.
            timeout: f64,
            /// The proxy's request id.
            request_id: Int256,
            /// The client's id of the request, which the worker's receipt names so that it
            /// cannot be presented for another request.
            client_request_id: Int256,
            /// Most completion tokens (over all choices) the client's reservation covers.
            token_limit: i64,
            /// Flags: which optional fields are present.
            flags: u32,
            /// Ask for debug information (present with flag bit 0).
            enable_debug: bool => 0,
        }
    }

    tl_struct! {
        /// Proxy → worker: `ext.runSealedQuery`'s envelope, forwarded to one of its candidates,
        /// with the token limit the proxy reserved (enforced by the worker, which alone can read
        /// the body). Answered like `proxy.runQueryEx`, with the answer bytes sealed. Sent as
        /// `tcp.packet`.
        WorkerRunSealedQuery = 0xd080527f, "ext.workerRunSealedQuery envelope:bytes coefficient:long timeout:double request_id:int256 client_request_id:int256 token_limit:long flags:# enable_debug:flags.0?Bool = proxy.QueryAnswerEx" {
            extension_flags = crate::messages::AUDIO_UNITS_FLAG;
            /// The sealed `http.request`.
            envelope: Bytes,
            /// The worker's coefficient as the proxy prices it.
            coefficient: i64,
            /// Time left, in seconds.
            timeout: f64,
            /// The proxy's request id.
            request_id: Int256,
            /// The client's id of the request, which the worker's receipt names so that it
            /// cannot be presented for another request.
            client_request_id: Int256,
            /// Most completion tokens (over all choices) the client's reservation covers.
            token_limit: i64,
            /// Flags: which optional fields are present.
            flags: u32,
            /// Ask for debug information (present with flag bit 0).
            enable_debug: bool => 0,
        }
    }

    /// `error_code` of the `proxy.queryAnswerErrorEx` with which a version 3 worker acknowledges
    /// `ext.cancelQuery`: its final info carries the tokens produced until the worker stopped,
    /// which the proxy charges when answer bytes had already reached the client.
    pub const CANCELLED_ERROR_CODE: i32 = 499;
}

tl_enum! {
    /// Any boxed COCOON message, for dispatch on a received payload.
    Message, "any COCOON message" {
        /// `tcp.ping`.
        TcpPing(tcp::Ping),
        /// `tcp.pong`.
        TcpPong(tcp::Pong),
        /// `tcp.packet`.
        TcpPacket(tcp::Packet),
        /// `tcp.queryAnswer`.
        TcpQueryAnswer(tcp::QueryAnswer),
        /// `tcp.queryError`.
        TcpQueryError(tcp::QueryError),
        /// `tcp.query`.
        TcpQuery(tcp::Query),
        /// `tcp.connected`.
        TcpConnected(tcp::Connected),
        /// `tcp.connect`.
        TcpConnect(tcp::Connect),
        /// `tokensUsed`.
        TokensUsed(TokensUsed),
        /// `http.header`.
        HttpHeader(http::Header),
        /// `http.response`.
        HttpResponse(http::Response),
        /// `http.request`.
        HttpRequest(http::Request),
        /// `client.params`.
        ClientParams(client::Params),
        /// `client.proxyConnectionAuthShort`.
        ClientProxyConnectionAuthShort(client::ProxyConnectionAuthShort),
        /// `client.proxyConnectionAuthLong`.
        ClientProxyConnectionAuthLong(client::ProxyConnectionAuthLong),
        /// `client.authorizationWithProxySuccess`.
        ClientAuthorizationWithProxySuccess(client::AuthorizationWithProxySuccess),
        /// `client.authorizationWithProxyFailed`.
        ClientAuthorizationWithProxyFailed(client::AuthorizationWithProxyFailed),
        /// `client.connectedToProxy`.
        ClientConnectedToProxy(client::ConnectedToProxy),
        /// `client.queryAnswer`.
        ClientQueryAnswer(client::QueryAnswer),
        /// `client.queryAnswerError`.
        ClientQueryAnswerError(client::QueryAnswerError),
        /// `client.queryAnswerPart`.
        ClientQueryAnswerPart(client::QueryAnswerPart),
        /// `client.queryAnswerPartError`.
        ClientQueryAnswerPartError(client::QueryAnswerPartError),
        /// `client.queryFinalInfo`.
        ClientQueryFinalInfo(client::QueryFinalInfo),
        /// `client.queryAnswerEx`.
        ClientQueryAnswerEx(client::QueryAnswerEx),
        /// `client.queryAnswerErrorEx`.
        ClientQueryAnswerErrorEx(client::QueryAnswerErrorEx),
        /// `client.queryAnswerPartEx`.
        ClientQueryAnswerPartEx(client::QueryAnswerPartEx),
        /// `client.refund`.
        ClientRefund(client::Refund),
        /// `client.refundRejected`.
        ClientRefundRejected(client::RefundRejected),
        /// `client.workerType`.
        ClientWorkerType(client::WorkerType),
        /// `client.workerTypes`.
        ClientWorkerTypes(client::WorkerTypes),
        /// `client.workerInstanceV2`.
        ClientWorkerInstanceV2(client::WorkerInstanceV2),
        /// `client.workerTypeV2`.
        ClientWorkerTypeV2(client::WorkerTypeV2),
        /// `client.workerTypesV2`.
        ClientWorkerTypesV2(client::WorkerTypesV2),
        /// `client.paymentStatus`.
        ClientPaymentStatus(client::PaymentStatus),
        /// `client.connectToProxy`.
        ClientConnectToProxy(client::ConnectToProxy),
        /// `client.authorizeWithProxyShort`.
        ClientAuthorizeWithProxyShort(client::AuthorizeWithProxyShort),
        /// `client.authorizeWithProxyLong`.
        ClientAuthorizeWithProxyLong(client::AuthorizeWithProxyLong),
        /// `client.runQuery`.
        ClientRunQuery(client::RunQuery),
        /// `client.runQueryEx`.
        ClientRunQueryEx(client::RunQueryEx),
        /// `client.requestRefund`.
        ClientRequestRefund(client::RequestRefund),
        /// `client.updatePaymentStatus`.
        ClientUpdatePaymentStatus(client::UpdatePaymentStatus),
        /// `client.getWorkerTypes`.
        ClientGetWorkerTypes(client::GetWorkerTypes),
        /// `client.getWorkerTypesV2`.
        ClientGetWorkerTypesV2(client::GetWorkerTypesV2),
        /// `proxy.params`.
        ProxyParams(proxy::Params),
        /// `proxy.clientRequestPayment`.
        ProxyClientRequestPayment(proxy::ClientRequestPayment),
        /// `proxy.signedPayment`.
        ProxySignedPayment(proxy::SignedPayment),
        /// `proxy.signedPaymentEmpty`.
        ProxySignedPaymentEmpty(proxy::SignedPaymentEmpty),
        /// `proxy.queryAnswer`.
        ProxyQueryAnswer(proxy::QueryAnswer),
        /// `proxy.queryAnswerError`.
        ProxyQueryAnswerError(proxy::QueryAnswerError),
        /// `proxy.queryAnswerPart`.
        ProxyQueryAnswerPart(proxy::QueryAnswerPart),
        /// `proxy.queryAnswerPartError`.
        ProxyQueryAnswerPartError(proxy::QueryAnswerPartError),
        /// `proxy.queryFinalInfo`.
        ProxyQueryFinalInfo(proxy::QueryFinalInfo),
        /// `proxy.queryAnswerEx`.
        ProxyQueryAnswerEx(proxy::QueryAnswerEx),
        /// `proxy.queryAnswerErrorEx`.
        ProxyQueryAnswerErrorEx(proxy::QueryAnswerErrorEx),
        /// `proxy.queryAnswerPartEx`.
        ProxyQueryAnswerPartEx(proxy::QueryAnswerPartEx),
        /// `proxy.workerRequestPayment`.
        ProxyWorkerRequestPayment(proxy::WorkerRequestPayment),
        /// `proxy.runQuery`.
        ProxyRunQuery(proxy::RunQuery),
        /// `proxy.runQueryEx`.
        ProxyRunQueryEx(proxy::RunQueryEx),
        /// `worker.params`.
        WorkerParams(worker::Params),
        /// `worker.enabledDisabled`.
        WorkerEnabledDisabled(worker::EnabledDisabled),
        /// `worker.newCoefficient`.
        WorkerNewCoefficient(worker::NewCoefficient),
        /// `worker.connectedToProxy`.
        WorkerConnectedToProxy(worker::ConnectedToProxy),
        /// `worker.compareBalanceWithProxyResult`.
        WorkerCompareBalanceWithProxyResult(worker::CompareBalanceWithProxyResult),
        /// `worker.extendedCompareBalanceWithProxyResult`.
        WorkerExtendedCompareBalanceWithProxyResult(worker::ExtendedCompareBalanceWithProxyResult),
        /// `worker.proxyHandshakeCompleted`.
        WorkerProxyHandshakeCompleted(worker::ProxyHandshakeCompleted),
        /// `worker.paymentStatus`.
        WorkerPaymentStatus(worker::PaymentStatus),
        /// `worker.connectToProxy`.
        WorkerConnectToProxy(worker::ConnectToProxy),
        /// `worker.compareBalanceWithProxy`.
        WorkerCompareBalanceWithProxy(worker::CompareBalanceWithProxy),
        /// `worker.extendedCompareBalanceWithProxy`.
        WorkerExtendedCompareBalanceWithProxy(worker::ExtendedCompareBalanceWithProxy),
        /// `worker.proxyHandshakeComplete`.
        WorkerProxyHandshakeComplete(worker::ProxyHandshakeComplete),
        /// `worker.updatePaymentStatus`.
        WorkerUpdatePaymentStatus(worker::UpdatePaymentStatus),
        /// `worker.changedModel`.
        WorkerChangedModel(worker::ChangedModel),
        /// `worker.changeModel`.
        WorkerChangeModel(worker::ChangeModel),
        /// `ext.cancelQuery` (version 3 extension).
        ExtCancelQuery(ext::CancelQuery),
        /// `ext.queryCost` (version 3 extension).
        ExtQueryCost(ext::QueryCost),
        /// `ext.queryReceipt` (version 3 extension).
        ExtQueryReceipt(ext::QueryReceipt),
        /// `ext.workerAttestation` (version 3 extension).
        ExtWorkerAttestation(ext::WorkerAttestation),
        /// `ext.getWorkerKeys` (version 3 extension).
        ExtGetWorkerKeys(ext::GetWorkerKeys),
        /// `ext.workerKey` (version 3 extension).
        ExtWorkerKey(ext::WorkerKey),
        /// `ext.workerKeys` (version 3 extension).
        ExtWorkerKeys(ext::WorkerKeys),
        /// `ext.runSealedQuery` (version 3 extension).
        ExtRunSealedQuery(ext::RunSealedQuery),
        /// `ext.workerRunSealedQuery` (version 3 extension).
        ExtWorkerRunSealedQuery(ext::WorkerRunSealedQuery),
        /// `ext.workerRunQuery` (version 3 extension).
        ExtWorkerRunQuery(ext::WorkerRunQuery),
    }
}

impl Default for proxy::AnySignedPayment {
    fn default() -> Self {
        Self::SignedPaymentEmpty(proxy::SignedPaymentEmpty {})
    }
}

impl Default for client::AnyProxyConnectionAuth {
    fn default() -> Self {
        Self::ProxyConnectionAuthLong(client::ProxyConnectionAuthLong::default())
    }
}
