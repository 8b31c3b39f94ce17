//! toncenter's JSON answers and their conversion into the crate's types: API v2 for account
//! states, get-methods and sent messages, API v3 for transactions and the masterchain head.
//! The shapes are those of toncenter's OpenAPI documents; anything else is a
//! [`ChainError::BadResponse`], never a panic.

use crate::ChainError;
use crate::stack::{GetMethodResult, kind};
use crate::types::{
    AccountState, AccountStatus, ChainStatus, ComputePhase, MessageKind, MessageSummary,
    Transaction, TransactionId, parse_address,
};
use cocoon_ton::contracts::StackValue;
use cocoon_ton::{Address, Cell};
use serde::Deserialize;
use serde_json::Value;

/// Converts toncenter's answers, naming the endpoint in errors.
pub(crate) struct Decoder<'a> {
    pub(crate) url: &'a str,
}

impl Decoder<'_> {
    fn bad(&self, detail: impl Into<String>) -> ChainError {
        ChainError::bad_response(self.url, detail)
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        body: &[u8],
    ) -> Result<T, ChainError> {
        serde_json::from_slice(body).map_err(|e| self.bad(format!("JSON: {e}")))
    }

    /// Unwraps API v2's `{ok, result | error, code}` envelope.
    pub(crate) fn v2<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, ChainError> {
        #[derive(Deserialize)]
        struct Envelope {
            ok: bool,
            result: Option<Value>,
            error: Option<String>,
            code: Option<i64>,
        }
        let env: Envelope = self.json(body)?;
        if !env.ok {
            return Err(ChainError::Api {
                url: self.url.to_owned(),
                code: env.code,
                message: env.error.unwrap_or_else(|| "no error text".to_owned()),
            });
        }
        let result = env.result.ok_or_else(|| self.bad("ok without result"))?;
        serde_json::from_value(result).map_err(|e| self.bad(format!("result: {e}")))
    }

    fn cell_field(&self, text: &str, what: &str) -> Result<Cell, ChainError> {
        Cell::from_boc_base64(text).map_err(|e| self.bad(format!("{what}: {e}")))
    }

    fn hash_b64(&self, text: &str, what: &str) -> Result<[u8; 32], ChainError> {
        if let Some(bytes) = decode_base64(text)
            && bytes.len() == 32
        {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes);
            return Ok(out);
        }
        // some fields are hex
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out)
            .map_err(|_| self.bad(format!("{what}: not a 32-byte hash")))?;
        Ok(out)
    }

    fn address(&self, text: &str, what: &str) -> Result<Address, ChainError> {
        parse_address(text).map_err(|e| self.bad(format!("{what}: {e}")))
    }

    /// A decimal integer sent either as a JSON number or a string.
    fn integer(&self, value: &Value, what: &str) -> Result<i128, ChainError> {
        match value {
            Value::String(s) => s.trim().parse::<i128>().ok(),
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            _ => None,
        }
        .ok_or_else(|| self.bad(format!("{what}: not an integer: {value}")))
    }

    fn unsigned<T: TryFrom<i128>>(&self, value: &Value, what: &str) -> Result<T, ChainError> {
        let v = self.integer(value, what)?;
        T::try_from(v).map_err(|_| self.bad(format!("{what}: {v} out of range")))
    }

    // ---- API v2: account state -------------------------------------------------------------

    pub(crate) fn account(
        &self,
        address: Address,
        body: &[u8],
    ) -> Result<AccountState, ChainError> {
        #[derive(Deserialize)]
        struct TxId {
            lt: Value,
            hash: String,
        }
        #[derive(Deserialize)]
        struct Info {
            balance: Value,
            #[serde(default)]
            code: String,
            #[serde(default)]
            data: String,
            last_transaction_id: Option<TxId>,
            state: String,
        }
        let info: Info = self.v2(body)?;
        let balance = self.integer(&info.balance, "balance")?;
        let last_transaction = match info.last_transaction_id {
            Some(id) => {
                let lt: u64 = self.unsigned(&id.lt, "last_transaction_id.lt")?;
                if lt == 0 {
                    None
                } else {
                    Some(TransactionId {
                        lt,
                        hash: self.hash_b64(&id.hash, "last_transaction_id.hash")?,
                    })
                }
            }
            None => None,
        };
        let status = match info.state.as_str() {
            "active" => AccountStatus::Active,
            "frozen" => AccountStatus::Frozen,
            "uninitialized" | "uninit" if balance <= 0 && last_transaction.is_none() => {
                AccountStatus::Nonexistent
            }
            "uninitialized" | "uninit" => AccountStatus::Uninit,
            "nonexist" => AccountStatus::Nonexistent,
            other => return Err(self.bad(format!("account state {other:?}"))),
        };
        let optional_cell = |text: &str, what: &str| -> Result<Option<Cell>, ChainError> {
            if text.is_empty() {
                Ok(None)
            } else {
                self.cell_field(text, what).map(Some)
            }
        };
        Ok(AccountState {
            address,
            status,
            // tonlib reports -1 for accounts it has never seen
            balance: u128::try_from(balance.max(0)).unwrap_or(0),
            code: optional_cell(&info.code, "code")?,
            data: optional_cell(&info.data, "data")?,
            last_transaction,
        })
    }

    // ---- API v2: get-methods ---------------------------------------------------------------

    pub(crate) fn get_method(&self, body: &[u8]) -> Result<GetMethodResult, ChainError> {
        #[derive(Deserialize)]
        struct Run {
            gas_used: Value,
            exit_code: i64,
            stack: Vec<Value>,
        }
        let run: Run = self.v2(body)?;
        let exit_code = i32::try_from(run.exit_code)
            .map_err(|_| self.bad(format!("exit_code {} out of range", run.exit_code)))?;
        let stack = run
            .stack
            .iter()
            .enumerate()
            .map(|(i, v)| self.stack_item(v, i))
            .collect::<Result<_, _>>()?;
        Ok(GetMethodResult {
            exit_code,
            gas_used: self.unsigned(&run.gas_used, "gas_used")?,
            stack,
        })
    }

    /// One top-level v2 stack item: `["num", "0x.."]`, `["cell", {"bytes": ..}]`,
    /// `["slice", ..]`, `["null", ..]`, `["tuple" | "list", {"elements": [..]}]`.
    pub(crate) fn stack_item(&self, item: &Value, index: usize) -> Result<StackValue, ChainError> {
        let bad = |detail: &str| self.bad(format!("stack item {index}: {detail}"));
        let Some([kind, value]) = item.as_array().map(Vec::as_slice).and_then(|a| match a {
            [k] => Some([k.clone(), Value::Null]),
            [k, v] => Some([k.clone(), v.clone()]),
            _ => None,
        }) else {
            return Err(bad("not a [type, value] pair"));
        };
        let kind = kind.as_str().ok_or_else(|| bad("type is not a string"))?;
        match kind {
            "num" | "int" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| bad("number is not a string"))?;
                parse_tvm_int(text).ok_or_else(|| bad("not a TVM integer"))
            }
            "null" => Ok(StackValue::Null),
            "cell" | "tvm.Cell" => Ok(StackValue::Cell(self.cell_value(&value, index)?)),
            "slice" | "tvm.Slice" => Ok(StackValue::Slice(self.cell_value(&value, index)?)),
            "tuple" | "list" => {
                let elements = value
                    .get("elements")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("tuple without elements"))?;
                elements
                    .iter()
                    .map(|e| self.tuple_element(e, index))
                    .collect::<Result<Vec<_>, _>>()
                    .map(StackValue::Tuple)
            }
            other => Err(bad(&format!("unknown type {other:?}"))),
        }
    }

    /// A cell value: `{"bytes": "<base64>"}` or the base64 string itself.
    fn cell_value(&self, value: &Value, index: usize) -> Result<Cell, ChainError> {
        let text = value
            .as_str()
            .or_else(|| value.get("bytes").and_then(Value::as_str))
            .ok_or_else(|| self.bad(format!("stack item {index}: cell without bytes")))?;
        self.cell_field(text, "stack cell")
    }

    /// An element inside a v2 tuple: tonlib's `tvm.stackEntry*` objects.
    fn tuple_element(&self, value: &Value, index: usize) -> Result<StackValue, ChainError> {
        let bad = |detail: String| self.bad(format!("stack item {index}: {detail}"));
        let kind = value
            .get("@type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("tuple element without @type".to_owned()))?;
        let inner = |field: &str| {
            value
                .get(field)
                .ok_or_else(|| bad(format!("{kind} without {field}")))
        };
        match kind {
            "tvm.stackEntryNumber" => {
                let number = inner("number")?;
                let text = number
                    .get("number")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("number without digits".to_owned()))?;
                parse_tvm_int(text).ok_or_else(|| bad(format!("bad number {text:?}")))
            }
            "tvm.stackEntryCell" => Ok(StackValue::Cell(self.cell_value(inner("cell")?, index)?)),
            "tvm.stackEntrySlice" => {
                Ok(StackValue::Slice(self.cell_value(inner("slice")?, index)?))
            }
            "tvm.stackEntryTuple" | "tvm.stackEntryList" => {
                let field = if kind == "tvm.stackEntryTuple" {
                    "tuple"
                } else {
                    "list"
                };
                let elements = inner(field)?
                    .get("elements")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(format!("{kind} without elements")))?;
                elements
                    .iter()
                    .map(|e| self.tuple_element(e, index))
                    .collect::<Result<Vec<_>, _>>()
                    .map(StackValue::Tuple)
            }
            "tvm.stackEntryNull" => Ok(StackValue::Null),
            other => Err(bad(format!("unknown tuple element {other:?}"))),
        }
    }

    // ---- API v2: sending -------------------------------------------------------------------

    pub(crate) fn sent_hash(&self, body: &[u8]) -> Result<Option<[u8; 32]>, ChainError> {
        #[derive(Deserialize)]
        struct Info {
            hash: Option<String>,
        }
        let info: Info = self.v2(body)?;
        info.hash
            .as_deref()
            .map(|h| self.hash_b64(h, "message hash"))
            .transpose()
    }

    // ---- API v3: masterchain head ----------------------------------------------------------

    pub(crate) fn masterchain_info(&self, body: &[u8]) -> Result<ChainStatus, ChainError> {
        #[derive(Deserialize)]
        struct Block {
            seqno: Value,
            gen_utime: Value,
        }
        #[derive(Deserialize)]
        struct Info {
            last: Block,
        }
        let info: Info = self.json(body)?;
        Ok(ChainStatus {
            now: self.unsigned(&info.last.gen_utime, "last.gen_utime")?,
            seqno: self.unsigned(&info.last.seqno, "last.seqno")?,
        })
    }

    // ---- API v3: transactions --------------------------------------------------------------

    pub(crate) fn transactions(&self, body: &[u8]) -> Result<Vec<Transaction>, ChainError> {
        #[derive(Deserialize)]
        struct List {
            transactions: Vec<V3Transaction>,
        }
        let list: List = self.json(body)?;
        list.transactions
            .into_iter()
            .map(|t| self.transaction(t))
            .collect()
    }

    fn transaction(&self, t: V3Transaction) -> Result<Transaction, ChainError> {
        let d = t.description;
        let compute = match d.compute_ph {
            None => ComputePhase::Skipped {
                reason: "no compute phase".to_owned(),
            },
            Some(c) if c.skipped.unwrap_or(false) => ComputePhase::Skipped {
                reason: c.reason.unwrap_or_default(),
            },
            Some(c) => ComputePhase::Vm {
                success: c.success.unwrap_or(false),
                exit_code: c
                    .exit_code
                    .map(|v| self.unsigned::<i32>(&v, "exit_code"))
                    .transpose()?
                    .unwrap_or(0),
                gas_used: c
                    .gas_used
                    .map(|v| self.unsigned::<u64>(&v, "gas_used"))
                    .transpose()?
                    .unwrap_or(0),
            },
        };
        Ok(Transaction {
            account: self.address(&t.account, "account")?,
            id: TransactionId {
                lt: self.unsigned(&t.lt, "lt")?,
                hash: self.hash_b64(&t.hash, "hash")?,
            },
            now: self.unsigned(&t.now, "now")?,
            in_message: t.in_msg.map(|m| self.message(m)).transpose()?,
            out_messages: t
                .out_msgs
                .into_iter()
                .map(|m| self.message(m))
                .collect::<Result<_, _>>()?,
            compute,
            action_success: d.action.and_then(|a| a.success),
            aborted: d.aborted.unwrap_or(false),
            total_fees: t
                .total_fees
                .map(|v| self.unsigned::<u128>(&v, "total_fees"))
                .transpose()?
                .unwrap_or(0),
        })
    }

    fn message(&self, m: V3Message) -> Result<MessageSummary, ChainError> {
        let source = m
            .source
            .as_deref()
            .map(|s| self.address(s, "message source"))
            .transpose()?;
        let destination = m
            .destination
            .as_deref()
            .map(|s| self.address(s, "message destination"))
            .transpose()?;
        let kind = match (&source, &destination) {
            (None, _) => MessageKind::ExternalIn,
            (Some(_), None) => MessageKind::ExternalOut,
            (Some(_), Some(_)) => MessageKind::Internal,
        };
        let op = match m.opcode {
            None | Some(Value::Null) => None,
            Some(v) => {
                let raw = match &v {
                    Value::String(s) if s.starts_with("0x") => i128::from_str_radix(&s[2..], 16)
                        .map_err(|_| self.bad(format!("opcode {s:?}")))?,
                    other => self.integer(other, "opcode")?,
                };
                // the indexer writes op codes as signed 32-bit numbers
                let bits = if raw < 0 {
                    i32::try_from(raw).map(|v| v.cast_unsigned()).ok()
                } else {
                    u32::try_from(raw).ok()
                };
                Some(bits.ok_or_else(|| self.bad(format!("opcode {raw} out of range")))?)
            }
        };
        let body = m
            .message_content
            .and_then(|c| c.body)
            .filter(|b| !b.is_empty())
            .map(|b| self.cell_field(&b, "message body"))
            .transpose()?;
        Ok(MessageSummary {
            kind,
            source,
            destination,
            value: m
                .value
                .map(|v| self.unsigned::<u128>(&v, "message value"))
                .transpose()?
                .unwrap_or(0),
            bounce: m.bounce.unwrap_or(false),
            bounced: m.bounced.unwrap_or(false),
            op,
            body,
        })
    }
}

#[derive(Deserialize)]
struct V3Transaction {
    account: String,
    hash: String,
    lt: Value,
    now: Value,
    total_fees: Option<Value>,
    description: V3Description,
    in_msg: Option<V3Message>,
    #[serde(default)]
    out_msgs: Vec<V3Message>,
}

#[derive(Deserialize)]
struct V3Description {
    aborted: Option<bool>,
    compute_ph: Option<V3Compute>,
    action: Option<V3Action>,
}

#[derive(Deserialize)]
struct V3Compute {
    skipped: Option<bool>,
    reason: Option<String>,
    success: Option<bool>,
    exit_code: Option<Value>,
    gas_used: Option<Value>,
}

#[derive(Deserialize)]
struct V3Action {
    success: Option<bool>,
}

#[derive(Deserialize)]
struct V3Message {
    source: Option<String>,
    destination: Option<String>,
    value: Option<Value>,
    bounce: Option<bool>,
    bounced: Option<bool>,
    opcode: Option<Value>,
    message_content: Option<V3Content>,
}

#[derive(Deserialize)]
struct V3Content {
    body: Option<String>,
}

/// `0x1f`, `-0x1f` or decimal, as toncenter writes TVM integers.
fn parse_tvm_int(text: &str) -> Option<StackValue> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .unwrap_or(digits);
    // a TVM integer has at most 257 bits (78 decimal digits): refuse longer text before
    // handing it to a big-number parser
    if digits.is_empty() || digits.len() > 80 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    StackValue::parse_int(text).ok()
}

/// Base64 in either alphabet, padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = text.trim();
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, config).decode(text))
        .ok()
}

/// v2 get-method arguments: `["num", "<decimal>"]`, `["tvm.Cell" | "tvm.Slice", "<base64>"]`.
pub(crate) fn stack_argument(value: &StackValue) -> Result<Value, ChainError> {
    Ok(match value {
        StackValue::Int(v) => serde_json::json!(["num", v.to_string()]),
        StackValue::Cell(c) => serde_json::json!(["tvm.Cell", c.to_boc_base64()]),
        StackValue::Slice(c) => serde_json::json!(["tvm.Slice", c.to_boc_base64()]),
        other => {
            return Err(ChainError::Config(format!(
                "toncenter get-methods take numbers, cells and slices, not {}",
                kind(other)
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn tvm_integers_in_every_spelling() {
        let int = |v: i64| Some(StackValue::Int(num_bigint::BigInt::from(v)));
        assert_eq!(parse_tvm_int("0x1f"), int(31));
        assert_eq!(parse_tvm_int("-0x1f"), int(-31));
        assert_eq!(parse_tvm_int("42"), int(42));
        assert_eq!(parse_tvm_int("0x"), None);
        assert_eq!(parse_tvm_int(""), None);
        assert_eq!(parse_tvm_int("-"), None);
        assert_eq!(parse_tvm_int("1e5"), None);
        assert_eq!(parse_tvm_int(&"f".repeat(100)), None);
        assert_eq!(
            parse_tvm_int(&format!("0x{}", "f".repeat(70))),
            None,
            "over 257 bits"
        );
    }

    #[test]
    fn malformed_stack_items_are_errors() {
        let d = Decoder { url: "test" };
        for bad in [
            serde_json::json!("num"),
            serde_json::json!([]),
            serde_json::json!(["num", 5]),
            serde_json::json!(["cell", {}]),
            serde_json::json!(["cell", {"bytes": "!!"}]),
            serde_json::json!(["tuple", {}]),
            serde_json::json!(["tuple", {"elements": [{"@type": "tvm.stackEntryWhat"}]}]),
            serde_json::json!(["mystery", null]),
        ] {
            assert!(d.stack_item(&bad, 0).is_err(), "{bad}");
        }
    }
}
