"""Reference outputs for Peft.NET issue 17 (chat templates, text-generation pipeline text, hub cache interop).

Run with transformers 5.17 (CPU is enough):  python3 make_refs.py OUT_DIR
Inputs, relative to this script's folder:
  templates/*.jinja            collected chat templates (rendered with the llama2 tokenizer's <s>/</s>)
  tokenizers/{llama2,llama3,qwen3}/   real tokenizer.json + tokenizer_config.json
  models/{gpt2,llama,opt,qwen2}-tiny/ tiny fixture models
  cs_cache/ (optional)         a hub cache folder written by the C# downloader, loaded here offline
Outputs: chat_template_refs.json, pipeline_refs.json, hub_interop.json, py_cache.tar.gz, pipeline_source.txt
"""
import copy, hashlib, http.server, inspect, json, os, sys, tarfile, threading, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else "out"
os.makedirs(OUT, exist_ok=True)
os.environ.pop("HF_HUB_OFFLINE", None)

import torch
import transformers
from transformers import AutoTokenizer, AutoModelForCausalLM, pipeline

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                           "unit": {"type": "string", "enum": ["c", "f"]}},
                         "required": ["city"]}}}]

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "Hello!"}],
    "system_user": [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is 2+2?"}],
    "multi_turn": [{"role": "system", "content": "  Be brief.  "},
                   {"role": "user", "content": "Hi there"},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Tell me a joke.\nA short one."}],
    "ends_assistant": [{"role": "user", "content": "Write a haiku"},
                       {"role": "assistant", "content": "Autumn moonlight -"}],
    "unicode": [{"role": "user", "content": "Grüße, 世界 🌍 — «ok» \"quoted\" 'single' \\ back"},
                {"role": "assistant", "content": "日本語の返事です。 Ça va? ✓"},
                {"role": "user", "content": "  spaces around  \n\n"}],
    "tool_calls": [{"role": "user", "content": "What's the weather in Paris?"},
                   {"role": "assistant", "content": "", "tool_calls": [
                       {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]},
                   {"role": "tool", "name": "get_weather", "content": "{\"temperature\": 21, \"sky\": \"sunny\"}"},
                   {"role": "assistant", "content": "It is 21°C and sunny in Paris."}],
    "thinking": [{"role": "user", "content": "Think first: 3*7?"},
                 {"role": "assistant", "content": "<think>\n3*7 = 21\n</think>\n\nThe answer is 21."},
                 {"role": "user", "content": "And 4*5?"}],
}

def variants(conv_name, conv, template_name):
    out = []
    for agp in (False, True):
        out.append({"add_generation_prompt": agp})
    if conv[-1]["role"] == "assistant":
        out.append({"continue_final_message": True})
    if conv_name in ("user_only", "tool_calls"):
        out.append({"add_generation_prompt": True, "tools": TOOLS})
    if template_name.startswith("llama-3.1"):
        # strftime_now would print today's date: pin it as Llama 3.1 users do
        for v in out:
            v.setdefault("template_variables", {})["date_string"] = "26 Jul 2024"
    if template_name.startswith("qwen3"):
        out.append({"add_generation_prompt": True, "template_variables": {"enable_thinking": False}})
        out.append({"add_generation_prompt": False, "template_variables": {"enable_thinking": True}})
    return out

class RawTemplateTokenizer:
    """Fallback for a tokenizer.json that AutoTokenizer cannot load (the real Llama-3 file fails the deepcopy that
    transformers 5.17 does: tokenizers cannot unpickle its merges). Renders with transformers' own
    render_jinja_template, passing the special tokens as apply_chat_template does, and tokenizes with tokenizers."""

    def __init__(self, path):
        from tokenizers import Tokenizer
        self.backend = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        cfg = json.load(open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8"))
        self.special = {}
        for k in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
            v = cfg.get(k)
            if isinstance(v, dict): v = v.get("content")
            if v is not None: self.special[k] = v
        self.chat_template = cfg.get("chat_template")

    def apply_chat_template(self, conv, tokenize=False, add_generation_prompt=False, continue_final_message=False, tools=None, **kw):
        from transformers.utils.chat_template_utils import render_jinja_template
        out = render_jinja_template(conversations=[conv], tools=tools, chat_template=self.chat_template,
                                    add_generation_prompt=add_generation_prompt,
                                    continue_final_message=continue_final_message, **{**self.special, **kw})
        rendered = out[0] if isinstance(out, tuple) else out
        return rendered[0] if isinstance(rendered, list) else rendered

    def encode(self, text, add_special_tokens=False):
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids


def load_tok(path):
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception:
        print("AutoTokenizer failed for", path, "- using RawTemplateTokenizer:", traceback.format_exc()[-300:], flush=True)
        return RawTemplateTokenizer(path)

def chat_refs():
    templates = []  # (name, template_text or None (= the tokenizer's own), tokenizer folder)
    templates.append(("llama3", None, "tokenizers/llama3"))
    templates.append(("qwen3", None, "tokenizers/qwen3"))
    tdir = os.path.join(HERE, "templates")
    for f in sorted(os.listdir(tdir)):
        if f.endswith(".jinja"):
            templates.append((f[:-6], open(os.path.join(tdir, f), encoding="utf-8").read(), "tokenizers/llama2"))
    toks = {}
    cases = []
    for name, text, tokdir in templates:
        if tokdir not in toks:
            toks[tokdir] = load_tok(os.path.join(HERE, tokdir))
        tok = copy.copy(toks[tokdir])
        if text is not None:
            tok.chat_template = text
        for conv_name, conv in CONVERSATIONS.items():
            for v in variants(conv_name, conv, name):
                case = {"template": name, "tokenizer": tokdir, "conversation": conv_name, **copy.deepcopy(v)}
                if isinstance(tok, RawTemplateTokenizer): case["rendered_with"] = "render_jinja_template"
                kwargs = dict(tokenize=False, add_generation_prompt=v.get("add_generation_prompt", False),
                              continue_final_message=v.get("continue_final_message", False))
                if "tools" in v: kwargs["tools"] = v["tools"]
                kwargs.update(v.get("template_variables", {}))
                try:
                    rendered = tok.apply_chat_template(copy.deepcopy(conv), **kwargs)
                    case["text"] = rendered
                    case["ids"] = tok.encode(rendered, add_special_tokens=False)
                except Exception as e:
                    case["error"] = type(e).__name__ + ": " + str(e)
                cases.append(case)
    return {"transformers": transformers.__version__, "conversations": CONVERSATIONS, "tools": TOOLS, "cases": cases}

PROMPTS = ["The meeting is on Monday.", "Hello world", "She said: \"yes\" , and left .", "Grüße 世界", " leading space", "end with space "]

def pipeline_refs():
    res = {"cases": [], "chat": []}
    chatml = open(os.path.join(HERE, "templates", "chatml.jinja"), encoding="utf-8").read()
    for m in ["gpt2-tiny", "llama-tiny", "opt-tiny", "qwen2-tiny"]:
        path = os.path.join(HERE, "models", m)
        try:
            gen = pipeline("text-generation", model=path, device="cpu", dtype=torch.float32)
        except Exception as e:
            res["cases"].append({"model": m, "error": repr(e)}); continue
        for p in PROMPTS:
            case = {"model": m, "prompt": p}
            try:
                full = gen(p, do_sample=False, max_new_tokens=8)
                new = gen(p, do_sample=False, max_new_tokens=8, return_full_text=False)
                tens = gen(p, do_sample=False, max_new_tokens=8, return_tensors=True)
                case.update(full_text=full[0]["generated_text"], new_text=new[0]["generated_text"],
                            generated_token_ids=[int(x) for x in tens[0]["generated_token_ids"]],
                            prompt_ids=gen.tokenizer(p)["input_ids"])
            except Exception as e:
                case["error"] = traceback.format_exc()
            res["cases"].append(case)
        # chat input with a template set on the tokenizer
        for conv_name in ("system_user", "ends_assistant"):
            conv = CONVERSATIONS[conv_name]
            case = {"model": m, "template": "chatml", "conversation": conv_name}
            try:
                gen.tokenizer.chat_template = chatml
                kw = {"continue_final_message": True} if conv_name == "ends_assistant" else {}
                out = gen(copy.deepcopy(conv), do_sample=False, max_new_tokens=8, **kw)
                case["generated_text"] = out[0]["generated_text"]
                case["rendered"] = gen.tokenizer.apply_chat_template(conv, tokenize=False,
                    add_generation_prompt=conv_name != "ends_assistant", continue_final_message=conv_name == "ends_assistant")
            except Exception as e:
                case["error"] = traceback.format_exc()
            res["chat"].append(case)
    try:
        from transformers.pipelines.text_generation import TextGenerationPipeline
        src = inspect.getsource(TextGenerationPipeline)
        with open(os.path.join(OUT, "pipeline_source.txt"), "w") as f:
            f.write(src)
    except Exception:
        pass
    return res

# ---- fake hub served by Python, downloaded with huggingface_hub -> a Python-made cache for C# to read ----
REPO_FILES = {}
COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"

def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

class Hub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _serve(self, body):
        parts = self.path.split("/resolve/")
        if len(parts) != 2:
            self.send_response(404); self.end_headers(); return
        rev, _, fname = parts[1].partition("/")
        data = REPO_FILES.get(fname)
        if data is None:
            self.send_response(404); self.send_header("X-Error-Code", "EntryNotFound"); self.end_headers(); return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        if fname.endswith(".safetensors"):
            sha = hashlib.sha256(data).hexdigest()
            self.send_header("X-Linked-Etag", '"%s"' % sha)
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", '"%s"' % sha)
        else:
            self.send_header("ETag", '"%s"' % git_blob_sha1(data))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body: self.wfile.write(data)
    def do_HEAD(self): self._serve(False)
    def do_GET(self): self._serve(True)

def hub_interop():
    res = {}
    from huggingface_hub import hf_hub_download
    import huggingface_hub
    res["huggingface_hub"] = huggingface_hub.__version__
    src = os.path.join(HERE, "models", "llama-tiny")
    for f in os.listdir(src):
        REPO_FILES[f] = open(os.path.join(src, f), "rb").read()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    endpoint = "http://127.0.0.1:%d" % srv.server_address[1]
    cache = os.path.join("/tmp", "py_cache")
    try:
        for f in sorted(REPO_FILES):
            hf_hub_download("py-org/llama-tiny", f, cache_dir=cache, endpoint=endpoint)
        with tarfile.open(os.path.join(OUT, "py_cache.tar.gz"), "w:gz") as t:
            t.add(cache, arcname="py_cache")
        res["python_download"] = "ok"
        res["commit"] = COMMIT
        res["files"] = {f: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for f, d in REPO_FILES.items()}
    except Exception:
        res["python_download"] = traceback.format_exc()
    finally:
        srv.shutdown()
    # C#-made cache, loaded offline by Python
    cs = os.path.join(HERE, "cs_cache")
    if os.path.isdir(cs):
        try:
            listing = []
            for root, dirs, files in os.walk(cs):
                for n in dirs + files:
                    p = os.path.join(root, n)
                    listing.append(os.path.relpath(p, cs) + (" -> " + os.readlink(p) if os.path.islink(p) else ""))
            res["cs_cache_listing"] = sorted(listing)
            model = AutoModelForCausalLM.from_pretrained("tiny-org/llama-tiny", cache_dir=cs, local_files_only=True)
            tok = AutoTokenizer.from_pretrained("tiny-org/llama-tiny", cache_dir=cs, local_files_only=True)
            ref = AutoModelForCausalLM.from_pretrained(src)
            ids = tok("The meeting is on Monday.", return_tensors="pt")["input_ids"]
            with torch.no_grad():
                d = (model(ids).logits - ref(ids).logits).abs().max().item()
            res["cs_cache_load"] = {"ok": True, "max_abs_logit_diff": d, "ids": ids[0].tolist()}
        except Exception:
            res["cs_cache_load"] = {"ok": False, "error": traceback.format_exc()}
    else:
        res["cs_cache_load"] = "no cs_cache folder carried"
    return res

ONLY = sys.argv[2].split(",") if len(sys.argv) > 2 else None
for name, fn in [("chat_template_refs", chat_refs), ("pipeline_refs", pipeline_refs), ("hub_interop", hub_interop)]:
    if ONLY and name not in ONLY: continue
    try:
        r = fn()
    except Exception:
        r = {"fatal": traceback.format_exc()}
    with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(r, f, ensure_ascii=False, indent=1)
    print(name, "done", flush=True)
