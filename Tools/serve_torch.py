#!/usr/bin/env python3
"""Serve a Lethe run's ensemble the way a Python team would, for `lethe bench serve --python`.

FastAPI + uvicorn + PyTorch/PEFT: the base MiniLM from transformers, each live shard's LoRA
adapters and head read from the run's HDF5 stage files with h5py (the composition in
served.json), PEFT LoRA on the same modules, masked mean pooling, the linear head, and the mean
of the shards' logits. The same inference endpoint as `lethe serve`:
POST /v2/models/lethe/infer with a BYTES input "text" -> outputs "label" and "probabilities".
Each request is answered on FastAPI's thread pool with torch.inference_mode(); no batching
across requests (what a first Python service does).

Environment: the venv of Tools/requirements-torch.txt plus h5py, fastapi and uvicorn.
    python Tools/serve_torch.py --run Checkpoints/runs/demo --threads 2
Prints {"event": "listening", "port": N} on stdout once the models are loaded and the socket
listens (--port 0, the default, picks a free port).
"""
import argparse
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mirror as tm  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a trained Lethe run directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = p.parse_args()
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def load_ensemble(run):
    """(labels, tokenizer, [classifier per live shard]) of the run's served composition."""
    import h5py
    import torch
    with open(os.path.join(run, "train.json")) as f:
        settings = json.load(f)
    with open(os.path.join(run, "served.json")) as f:
        served = json.load(f)
    if settings.get("strategy") != "s3t" or served.get("strategy", "s3t") != "s3t":
        raise SystemExit("serve_torch.py serves S3T runs only")
    base_dir = os.path.normpath(os.path.join(run, settings["base_model"]))
    base = tm.load_encoder(base_dir)
    tokens = tm.Tokens(base_dir, settings["max_tokens"])
    labels, members = None, []
    for entry in served["shards"]:
        if entry["prefix_length"] == 0:
            continue
        adapters, head = {}, None
        for stage, key in enumerate(entry["stage_keys"], start=1):
            path = os.path.join(run, "stages", f"shard-{entry['shard']}", f"stage-{stage}-{key}.h5")
            with h5py.File(path, "r") as f:
                labels = [x.decode() if isinstance(x, bytes) else str(x) for x in f.attrs["labels"]]
                for name, group in f["adapters"].items():
                    adapters[name] = (torch.from_numpy(group["lora_A"][()]), torch.from_numpy(group["lora_B"][()]))
                head = (torch.from_numpy(f["head/weight"][()]), torch.from_numpy(f["head/bias"][()]))
        layers = sorted({int(name.split(".")[2]) for name in adapters})
        encoder = tm.lora_model(base, layers, settings["target_modules"], settings["r"], settings["lora_alpha"])
        classifier = tm.Classifier(encoder, len(labels), base.config.hidden_size, False, 0)
        modules = tm.adapter_modules(encoder)
        with torch.no_grad():
            for name, (a, b) in adapters.items():
                modules[name].lora_A["default"].weight.copy_(a)
                modules[name].lora_B["default"].weight.copy_(b)
            classifier.head.weight.copy_(head[0])
            classifier.head.bias.copy_(head[1])
        encoder.eval()
        members.append(classifier)
    if not members:
        raise SystemExit("every shard is dead: nothing to serve")
    return labels, tokens, members, served.get("ledger_head", {}).get("sequence", 0)


def main():
    args = parse_args()
    import torch
    import uvicorn
    from fastapi import FastAPI, HTTPException, Request
    torch.set_num_threads(args.threads)
    labels, tokens, members, generation = load_ensemble(args.run)
    app = FastAPI()

    @app.post("/v2/models/lethe/infer")
    def infer(body: dict):
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise HTTPException(400, "inputs must be an array")
        text = next((i for i in inputs if isinstance(i, dict) and i.get("name") == "text"), None)
        if text is None or not isinstance(text.get("data"), list) or not text["data"]:
            raise HTTPException(400, "no input named text with data")
        texts = [str(t) for t in text["data"]]
        ids = tokens.encode(texts)
        with torch.inference_mode():
            mean = sum(m.logits(ids) for m in members) / len(members)
            probabilities = torch.softmax(mean, dim=-1)
        predicted = [labels[i] for i in mean.argmax(dim=-1).tolist()]
        return {"model_name": "lethe", "model_version": str(generation),
                "outputs": [{"name": "label", "datatype": "BYTES", "shape": [len(texts)], "data": predicted},
                            {"name": "probabilities", "datatype": "FP32", "shape": [len(texts), len(labels)],
                             "data": probabilities.flatten().tolist()}]}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    print(json.dumps({"event": "listening", "host": args.host, "port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
