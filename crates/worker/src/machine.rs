//! The machine description a worker sends in `worker.params` (`machine_description_json`,
//! reference 9060ce5): what hardware and engine serve the model, for proxies' operators to see.
//!
//! It is self-reported and proves nothing (the attestation does that), so it holds only what
//! an operator would want on a dashboard. [`describe`] is a pure function of [`MachineFacts`];
//! [`gather`] reads the facts from `/proc` and `nvidia-smi` (when installed), each with a parser
//! of its own that the tests feed with sample text.

use std::time::Duration;

use serde::Serialize;

/// Longest description sent; proxies drop longer ones (4 KiB, as they cap it).
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// How long `nvidia-smi` may take before the worker goes on without GPU facts.
const NVIDIA_SMI_DEADLINE: Duration = Duration::from_secs(5);

/// One GPU, as `nvidia-smi` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// Model name, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// Its memory in bytes.
    pub memory_bytes: Option<u64>,
}

/// Everything the description says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineFacts {
    /// CPU model name, from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// Logical CPUs available to the process.
    pub cpu_count: usize,
    /// Total memory in bytes, from `/proc/meminfo`.
    pub memory_bytes: Option<u64>,
    /// GPUs `nvidia-smi` lists (empty without it).
    pub gpus: Vec<Gpu>,
    /// The engine: `builtin` or `upstream`.
    pub engine: String,
    /// The kind of TEE evidence the worker presents (`tdx`, `sev-snp`, or `simulated`).
    pub attestation: String,
}

/// The JSON object sent as `machine_description_json`, at most [`MAX_DESCRIPTION_BYTES`]:
/// when the whole object would be longer, the GPU list is cut and `gpus_omitted` counts the rest,
/// and an over-long CPU model name is left out.
pub fn describe(facts: &MachineFacts) -> String {
    #[derive(Serialize)]
    struct Cpu<'a> {
        model: Option<&'a str>,
        count: usize,
    }
    #[derive(Serialize)]
    struct Description<'a> {
        cpu: Cpu<'a>,
        memory_bytes: Option<u64>,
        gpus: &'a [Gpu],
        #[serde(skip_serializing_if = "is_zero")]
        gpus_omitted: usize,
        engine: &'a str,
        attested: bool,
        attestation: &'a str,
    }
    fn is_zero(n: &usize) -> bool {
        *n == 0
    }
    let mut cpu_model = facts.cpu_model.as_deref();
    let mut shown = facts.gpus.len();
    loop {
        let d = Description {
            cpu: Cpu {
                model: cpu_model,
                count: facts.cpu_count,
            },
            memory_bytes: facts.memory_bytes,
            gpus: &facts.gpus[..shown],
            gpus_omitted: facts.gpus.len() - shown,
            engine: &facts.engine,
            attested: facts.attestation != "simulated",
            attestation: &facts.attestation,
        };
        let text = serde_json::to_string(&d).unwrap_or_else(|_| String::from("{}"));
        if text.len() <= MAX_DESCRIPTION_BYTES {
            return text;
        }
        if shown > 0 {
            shown -= 1;
        } else if cpu_model.is_some() {
            cpu_model = None;
        } else {
            // Only an absurd engine or attestation name gets here.
            return String::from("{}");
        }
    }
}

/// The first `model name` line of `/proc/cpuinfo`.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The output of `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`:
/// one `name, MiB` line per GPU.
pub fn parse_nvidia_smi(output: &str) -> Vec<Gpu> {
    output
        .lines()
        .filter_map(|line| {
            let (name, mib) = line.rsplit_once(',')?;
            let name = name.trim();
            if name.is_empty() {
                return None;
            }
            Some(Gpu {
                model: name.to_owned(),
                memory_bytes: mib
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .and_then(|m| m.checked_mul(1 << 20)),
            })
        })
        .collect()
}

/// Reads the facts of this machine. Nothing here fails: a fact that cannot be read is absent.
pub async fn gather(engine: &str, attestation: &str) -> MachineFacts {
    let cpuinfo = tokio::fs::read_to_string("/proc/cpuinfo")
        .await
        .unwrap_or_default();
    let meminfo = tokio::fs::read_to_string("/proc/meminfo")
        .await
        .unwrap_or_default();
    MachineFacts {
        cpu_model: parse_cpu_model(&cpuinfo),
        cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: parse_mem_total(&meminfo),
        gpus: nvidia_gpus().await,
        engine: engine.to_owned(),
        attestation: attestation.to_owned(),
    }
}

/// GPUs from `nvidia-smi`, or none when it is not installed, fails or takes too long.
async fn nvidia_gpus() -> Vec<Gpu> {
    let run = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(NVIDIA_SMI_DEADLINE, run).await {
        Ok(Ok(out)) if out.status.success() => {
            parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
        }
        Ok(Ok(out)) => {
            tracing::debug!("nvidia-smi failed ({}); describing no GPU", out.status);
            Vec::new()
        }
        Ok(Err(e)) => {
            tracing::debug!("no nvidia-smi ({e}); describing no GPU");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("nvidia-smi took over {NVIDIA_SMI_DEADLINE:?}; describing no GPU");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn facts() -> MachineFacts {
        MachineFacts {
            cpu_model: Some("AMD EPYC 9654 96-Core Processor".into()),
            cpu_count: 16,
            memory_bytes: Some(128 << 30),
            gpus: vec![Gpu {
                model: "NVIDIA H100 80GB HBM3".into(),
                memory_bytes: Some(81559 << 20),
            }],
            engine: "upstream".into(),
            attestation: "tdx".into(),
        }
    }

    #[test]
    fn describes_cpu_memory_gpu_engine_and_attestation() {
        let v: serde_json::Value = serde_json::from_str(&describe(&facts())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cpu": {"model": "AMD EPYC 9654 96-Core Processor", "count": 16},
                "memory_bytes": 137438953472u64,
                "gpus": [{"model": "NVIDIA H100 80GB HBM3", "memory_bytes": 85520809984u64}],
                "engine": "upstream",
                "attested": true,
                "attestation": "tdx",
            })
        );
        let mut simulated = facts();
        simulated.attestation = "simulated".into();
        simulated.gpus.clear();
        let v: serde_json::Value = serde_json::from_str(&describe(&simulated)).unwrap();
        assert_eq!(v["attested"], false);
        assert_eq!(v["gpus"], serde_json::json!([]));
    }

    #[test]
    fn stays_under_the_cap_by_cutting_gpus_then_the_cpu_name() {
        let mut many = facts();
        many.gpus = vec![many.gpus[0].clone(); 200];
        let text = describe(&many);
        assert!(text.len() <= MAX_DESCRIPTION_BYTES);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let shown = v["gpus"].as_array().unwrap().len();
        assert!(shown > 10);
        assert_eq!(v["gpus_omitted"], 200 - shown);

        let mut long_name = facts();
        long_name.cpu_model = Some("x".repeat(5000));
        let v: serde_json::Value = serde_json::from_str(&describe(&long_name)).unwrap();
        assert_eq!(v["cpu"]["model"], serde_json::Value::Null);
        assert_eq!(v["cpu"]["count"], 16);
    }

    #[test]
    fn parses_proc_and_nvidia_smi_text() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\nprocessor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n";
        assert_eq!(
            parse_cpu_model(cpuinfo).as_deref(),
            Some("AMD EPYC 9654 96-Core Processor")
        );
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
        assert_eq!(
            parse_mem_total("MemTotal:       131891404 kB\nMemFree: 1 kB\n"),
            Some(131_891_404 * 1024)
        );
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots kB\n"), None);
        let smi = "NVIDIA H100 80GB HBM3, 81559\nNVIDIA H100 80GB HBM3, [N/A]\n\n";
        assert_eq!(
            parse_nvidia_smi(smi),
            vec![
                Gpu {
                    model: "NVIDIA H100 80GB HBM3".into(),
                    memory_bytes: Some(81559 << 20)
                },
                Gpu {
                    model: "NVIDIA H100 80GB HBM3".into(),
                    memory_bytes: None
                },
            ]
        );
        assert!(parse_nvidia_smi("No devices were found\n").is_empty());
    }
}
