"""A Search-R1 retrieval server in front of tantivy (Rust, block-max WAND): the scale-out path of
segflow's search past one machine (README, "Search at scale").

Speaks the protocol of Search-R1's search/retrieval_server.py, which segflow's `retrieval` backend
(activities/search/web-backends.ts, RetrievalServerBackend) is a client of:
    POST /retrieve {"queries": [str], "topk": int, "return_scores": bool}
    -> {"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}
       (without scores: [[{"id", "contents"}, ...], ...])
    GET /health -> {"status": "ok", "documents": N}

The corpus is a Search-R1 JSONL file ({"id", "contents": "Title\\nBody"} per line). Its tantivy index
is built once into --index-dir/<sha256 of the corpus> and opened from there at the next start.
Queries are OR of their words (lower-cased letters and digits), titles count double, as segflow's
embedded engine does; tantivy scores with Lucene's BM25 (k1 1.2, b 0.75), so rankings are close
to, not equal to, the embedded engine's.

    .venv/search/bin/python scripts/search-server/retrieve_tantivy.py \\
        --corpus data/local_kb/text_corpus.jsonl --index-dir .segflow/tantivy --port 8000

Serve many corpora or more load with one process per corpus, several replicas behind a load
balancer (each opens the same index folder read-only once it is built); prints
`listening on http://HOST:PORT` when ready (--port 0 picks a free port).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tantivy

WORD = re.compile(r"[^\W_]+")


def corpus_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def schema():
    b = tantivy.SchemaBuilder()
    b.add_integer_field("pos", stored=True, indexed=False)
    b.add_text_field("title", stored=False)
    b.add_text_field("body", stored=False)
    return b.build()


def read_corpus(path):
    """The corpus' passages in order; blank and broken lines are skipped with a warning."""
    docs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                contents = obj["contents"]
                doc_id = obj["id"]
                if not isinstance(contents, str):
                    raise TypeError("contents is not a string")
            except (ValueError, KeyError, TypeError) as err:
                print(f"{path}:{n}: skipped ({err})", file=sys.stderr)
                continue
            docs.append({"id": str(doc_id), "contents": contents})
    if not docs:
        raise SystemExit(f"corpus {path} has no usable passage (each line must be {{\"id\", \"contents\"}})")
    return docs


def open_index(docs, folder):
    """Opens the index in `folder`, building it first when it is not there (or unfinished)."""
    done = os.path.join(folder, ".complete")
    if not os.path.exists(done):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        index = tantivy.Index(schema(), path=folder)
        writer = index.writer(heap_size=256_000_000, num_threads=1)
        for pos, d in enumerate(docs):
            title, _, body = d["contents"].partition("\n")
            writer.add_document(tantivy.Document(pos=pos, title=title, body=body))
        writer.commit()
        writer.wait_merging_threads()
        open(done, "w").close()
    index = tantivy.Index.open(folder)
    index.reload()
    return index


class Retriever:
    def __init__(self, corpus, index_dir):
        self.docs = read_corpus(corpus)
        self.index = open_index(self.docs, os.path.join(index_dir, corpus_hash(corpus)))
        self.schema = schema()

    def query(self, text):
        words = sorted(set(WORD.findall(text.lower())))
        if not words:
            return None
        clauses = []
        for w in words:
            clauses.append((tantivy.Occur.Should, tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, "title", w), 2.0)))
            clauses.append((tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "body", w)))
        return tantivy.Query.boolean_query(clauses)

    def search(self, text, topk):
        q = self.query(text)
        if q is None:
            return []
        searcher = self.index.searcher()
        out = []
        for score, address in searcher.search(q, topk).hits:
            pos = searcher.doc(address)["pos"][0]
            out.append((self.docs[pos], float(score)))
        return out


def handler(retriever):
    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                return self.reply(200, {"status": "ok", "documents": len(retriever.docs)})
            self.reply(404, {"detail": "Not Found"})

        def do_POST(self):
            if self.path != "/retrieve":
                return self.reply(404, {"detail": "Not Found"})
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                queries = req["queries"]
                if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
                    raise TypeError("queries must be a list of strings")
                topk = int(req.get("topk", 3))
                scores = bool(req.get("return_scores", True))
            except (ValueError, KeyError, TypeError) as err:
                return self.reply(422, {"detail": [{"type": "invalid", "msg": str(err)}]})
            result = []
            for q in queries:
                hits = retriever.search(q, topk)
                result.append([{"document": d, "score": s} for d, s in hits] if scores else [d for d, _ in hits])
            self.reply(200, {"result": result})

        def log_message(self, fmt, *args):
            pass

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="Search-R1 JSONL corpus")
    p.add_argument("--index-dir", required=True, help="folder of built indexes (one per corpus content)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()
    retriever = Retriever(args.corpus, args.index_dir)
    server = ThreadingHTTPServer((args.host, args.port), handler(retriever))
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
