"""An OpenAI-compatible HTTP server (vLLM flavour) for the nano policy — stdlib only + torch.

  python -m nano.policy_server --model .nano/models/policy/v0 [--port 0] [--host 127.0.0.1]
                               [--served-model-name nano-policy] [--url-file PATH]

Endpoints (the subset activities/policy/client.ts uses, in vLLM's wire format):
  POST /v1/chat/completions   messages with text and image_url (data: or http URL) parts; stop
                              strings matched on the decoded text as tokens come out, kept in the
                              output with include_stop_str_in_output, reported in `stop_reason`
                              (null for `<eos>`); max_tokens -> finish_reason "length"; seed,
                              temperature, top_p, top_k; usage; `logprobs` (content entries,
                              `token_id:N` with return_tokens_as_token_ids) and `token_ids`
                              (return_token_ids) when asked; decoding within the turn grammar
                              (--grammar protocol, the default; `nano_protocol_grammar` per request;
                              the keyframe is one of the `frame N` ids of the first user message)
  POST /tokenize              {count, max_model_len, tokens}: prompt positions (images count as
                              their patch grids) with the generation prompt
  GET  /v1/models, GET /health
  POST /v1/load_lora_adapter  {lora_name, lora_path}: a nano checkpoint folder (local path or
                              s3://bucket/prefix/, read with the AWS env of the dev stack) becomes
                              the served model `lora_name` — the weight sync of a training run
  POST /v1/unload_lora_adapter {lora_name}
On start it prints `nano-policy-server: listening on http://HOST:PORT/v1` and writes that URL to
--url-file when given.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from nano import policy_model as pm


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# a policy version's manifest (core/contracts/training.ts POLICY_MANIFEST_FILE)
MANIFEST = "segflow-policy.json"
# a manifest's `filesDir` (core/contracts/training.ts): the committed update attempt's folder
FILES_DIR = re.compile(r"^attempts/[A-Za-z0-9][A-Za-z0-9_-]*/$")


def fetch_s3_folder(uri: str, client=None) -> str:
    """Copies an s3://bucket/prefix/ checkpoint into a temp folder (S3 endpoint from the env). A
    policy version (a folder with a manifest) is read through its manifest: the checkpoint files
    from the folder it names (`filesDir`, the update attempt that committed the version; the
    version folder for older versions), checked against the sha256 it lists, so what other
    attempts of the update wrote is never read."""
    import hashlib

    from botocore.exceptions import ClientError

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/"
    if client is None:
        import boto3  # optional: only for s3:// adapters

        endpoint = os.environ.get("SEGFLOW_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None
        client = boto3.client("s3", endpoint_url=endpoint)
    try:
        manifest = json.loads(client.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read())
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        manifest = None
    listed: dict = {}
    if manifest is not None:
        files_dir = manifest.get("filesDir", "")
        if files_dir and not FILES_DIR.match(files_dir):
            raise ValueError(f"the manifest of {uri} names the folder {files_dir!r}, not attempts/<attempt>/")
        prefix += files_dir
        listed = manifest.get("files") or {}
        missing = [f for f in CHECKPOINT_FILES if f not in listed]
        if missing:
            raise ValueError(f"policy version {uri} has no {', '.join(missing)} in its manifest")
    out = tempfile.mkdtemp(prefix="nano-policy-")
    for f in CHECKPOINT_FILES:
        path = os.path.join(out, f)
        client.download_file(bucket, prefix + f, path)
        if f in listed:
            with open(path, "rb") as fh:
                got = hashlib.file_digest(fh, "sha256").hexdigest()
            if got != listed[f]["sha256"]:
                raise ValueError(f"s3://{bucket}/{prefix}{f} has sha256 {got}, the manifest of {uri} lists {listed[f]['sha256']}")
    return out


class State:
    def __init__(self, base_name: str, base_path: str, grammar: bool = False,
                 logprobs_mode: str = "raw_logprobs") -> None:
        self.base_name = base_name
        self.grammar = grammar  # structured-output decoding of the turn grammar (pm.ProtocolGrammar)
        self.logprobs_mode = logprobs_mode  # as vLLM's --logprobs-mode
        self.models: dict[str, pm.NanoPolicy] = {base_name: pm.load(base_path)}
        self.paths: dict[str, str] = {base_name: base_path}
        self.lock = threading.Lock()  # torch CPU inference: one request at a time is fastest on 2 cores

    def model(self, name: str) -> pm.NanoPolicy:
        m = self.models.get(name)
        if m is None:
            raise ApiError(404, "NotFoundError", f"The model `{name}` does not exist.")
        return m


def chat(state: State, body: dict) -> dict:
    name = body.get("model") or state.base_name
    model = state.model(name)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "BadRequestError", "messages must be a non-empty list")
    if int(body.get("n", 1)) != 1:
        raise ApiError(400, "BadRequestError", "only n=1 is supported")
    try:
        prompt = pm.encode_conversation(model, messages, add_generation_prompt=True)
    except Exception as e:  # bad image, bad part
        raise ApiError(400, "BadRequestError", f"invalid messages: {e}") from e
    npos = prompt.positions()
    max_len = model.config.max_len
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    max_tokens = int(max_tokens) if max_tokens is not None else max_len - npos
    if npos >= max_len:
        raise ApiError(400, "BadRequestError",
                       f"This model's maximum context length is {max_len} tokens. However, your messages resulted in {npos} tokens. Please reduce the length of the messages.")
    # vLLM rejects prompt + max_tokens > max_model_len; the nano server clamps instead (the client's
    # budget does not know the nano context), which ends such a turn with finish_reason "length".
    max_new = max(0, min(max_tokens, max_len - npos))
    stop = body.get("stop") or []
    stops = [stop] if isinstance(stop, str) else list(stop)
    temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
    top_p = float(body.get("top_p") if body.get("top_p") is not None else 1.0)
    top_k = int(body.get("top_k") if body.get("top_k") is not None else -1)
    seed = body.get("seed")
    # the frames the first user message offers (`frame {fid} <image>`): the keyframe choices
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    keyframes = [int(f) for f in re.findall(r"frame (\d+)", _text_of(first_user))] if first_user else []
    with state.lock:
        out = pm.generate(model, prompt, max_new, stops, temperature, top_p, top_k,
                          int(seed) if seed is not None else None,
                          include_stop=bool(body.get("include_stop_str_in_output", False)),
                          constrained=bool(body.get("nano_protocol_grammar", state.grammar)),
                          keyframes=keyframes or None,
                          processed_logprobs=state.logprobs_mode == "processed_logprobs")
    ids = out["ids"]
    choice: dict = {
        "index": 0,
        "message": {"role": "assistant", "content": out["text"], "reasoning_content": None, "tool_calls": []},
        "finish_reason": out["finish_reason"],
        "stop_reason": out["stop_reason"],
        "logprobs": None,
    }
    if body.get("return_token_ids"):
        choice["token_ids"] = ids
    if body.get("logprobs"):
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        choice["logprobs"] = {"content": [
            {"token": f"token_id:{t}" if as_ids else model.tok.pieces[t], "logprob": lp,
             "bytes": list(model.tok.pieces[t].encode()), "top_logprobs": []}
            for t, lp in zip(ids, out["logprobs"])
        ]}
    result = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [choice],
        "usage": {"prompt_tokens": npos, "completion_tokens": len(ids), "total_tokens": npos + len(ids)},
    }
    if body.get("return_token_ids"):
        result["prompt_token_ids"] = prompt.ids
    return result


def tokenize(state: State, body: dict) -> dict:
    model = state.model(body.get("model") or state.base_name)
    if "messages" in body:
        p = pm.encode_conversation(model, body["messages"], add_generation_prompt=body.get("add_generation_prompt", True))
        n, ids = p.positions(), p.ids
    else:
        ids = model.tok.encode(str(body.get("prompt", "")))
        n = len(ids)
    return {"count": n, "max_model_len": model.config.max_len, "tokens": ids}


def load_adapter(state: State, body: dict) -> str:
    name, path = str(body.get("lora_name") or ""), str(body.get("lora_path") or "")
    if not name or not path:
        raise ApiError(400, "BadRequestError", "Both lora_name and lora_path must be provided.")
    if name in state.models:
        raise ApiError(400, "BadRequestError", f"The lora adapter '{name}' has already been loaded.")
    try:
        m = pm.load(fetch_s3_folder(path) if path.startswith("s3://") else path)
    except (FileNotFoundError, ValueError) as e:
        raise ApiError(400, "BadRequestError", f"Loading lora {name} failed: {e}") from e
    with state.lock:
        state.models[name] = m
        state.paths[name] = path
    return f"Success: LoRA adapter '{name}' added successfully."


def unload_adapter(state: State, body: dict) -> str:
    name = str(body.get("lora_name") or "")
    if name == state.base_name or name not in state.models:
        raise ApiError(404, "NotFoundError", f"The lora adapter '{name}' cannot be found.")
    with state.lock:
        del state.models[name]
        del state.paths[name]
    return f"Success: LoRA adapter '{name}' removed successfully."


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: one line per request on stderr only with NANO_LOG
            if os.environ.get("NANO_LOG"):
                sys.stderr.write("nano-policy-server: " + (fmt % args) + "\n")

        def send(self, status: int, payload, ctype="application/json") -> None:
            data = (json.dumps(payload) if ctype == "application/json" else str(payload)).encode()
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                return self.send(200, "", "text/plain")
            if self.path == "/v1/models":
                return self.send(200, {"object": "list", "data": [
                    {"id": n, "object": "model", "owned_by": "segflow-nano", "root": state.paths[n],
                     "parent": None if n == state.base_name else state.base_name,
                     "max_model_len": m.config.max_len} for n, m in list(state.models.items())]})
            self.send(404, {"detail": "Not Found"})

        def do_POST(self):
            try:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    raise ApiError(400, "BadRequestError", "Invalid JSON body")
                if self.path == "/v1/chat/completions":
                    return self.send(200, chat(state, body))
                if self.path == "/tokenize":
                    return self.send(200, tokenize(state, body))
                if self.path == "/v1/load_lora_adapter":
                    return self.send(200, load_adapter(state, body), "text/plain")
                if self.path == "/v1/unload_lora_adapter":
                    return self.send(200, unload_adapter(state, body), "text/plain")
                self.send(404, {"detail": "Not Found"})
            except ApiError as e:
                self.send(e.status, {"object": "error", "message": e.message, "type": e.kind, "param": None, "code": e.status})
            except Exception as e:  # noqa: BLE001
                self.send(500, {"object": "error", "message": f"{type(e).__name__}: {e}", "type": "InternalServerError", "code": 500})

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="nano policy checkpoint folder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--served-model-name", default="nano-policy")
    ap.add_argument("--url-file", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grammar", choices=["protocol", "none"], default="protocol",
                    help="protocol: decode within the turn grammar (structured output, like vLLM's guided "
                         "decoding; the model still makes every choice); none: free sampling. A request may "
                         "override it with the extra field nano_protocol_grammar: true|false")
    ap.add_argument("--logprobs-mode", choices=["raw_logprobs", "processed_logprobs"], default="raw_logprobs",
                    help="as vLLM's: the log-probs `logprobs: true` returns are of softmax(logits) (raw) or of "
                         "softmax(logits / temperature) (processed: what the trainer's importance ratio needs "
                         "when the rollouts' temperature is not 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    state = State(a.served_model_name, a.model, grammar=a.grammar == "protocol", logprobs_mode=a.logprobs_mode)
    srv = ThreadingHTTPServer((a.host, a.port), make_handler(state))
    srv.daemon_threads = True
    url = f"http://{a.host}:{srv.server_address[1]}/v1"
    if a.url_file:
        tmp = a.url_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(url + "\n")
        os.replace(tmp, a.url_file)
    print(f"nano-policy-server: listening on {url} (model {a.served_model_name} from {a.model})", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
