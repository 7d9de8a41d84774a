"""A two-layer transformer-encoder sentiment classifier on a generated corpus of short
review-like sentences ("the battery was not very good", "great service but the food was
bland"). Negation and "but" make word order matter, so the attention has something to learn.
Input: token ids [batch, seq] (int64, 0 = padding; vocab.json maps words to ids); output:
logits [batch, 2] (0 = negative, 1 = positive). The encoder is written out explicitly
(attention, LayerNorm, GELU) so the ONNX graph uses standard operators only."""
import json
import math
import os
import random

import torch

from common import HERE, export, seed_everything, train

MAX_LEN = 12
NOUNS = ["food", "service", "staff", "movie", "plot", "battery", "screen", "delivery", "price",
         "room", "coffee", "music", "app", "camera", "driver"]
POS = ["good", "great", "excellent", "wonderful", "tasty", "friendly", "fast", "clean", "fun",
       "amazing", "reliable", "cheap"]
NEG = ["bad", "terrible", "awful", "bland", "rude", "slow", "dirty", "boring", "broken",
       "noisy", "expensive", "disappointing"]
ADVERBS = ["", "really", "very", "quite", "so", "pretty"]


def clause(rng, positive):
    noun, adv = rng.choice(NOUNS), rng.choice(ADVERBS)
    negate = rng.random() < 0.3
    word = rng.choice(POS if positive != negate else NEG)
    words = ["the", noun, "was"] + (["not"] if negate else []) + ([adv] if adv else []) + [word]
    return words


def sentence(rng):
    positive = rng.random() < 0.5
    if rng.random() < 0.3:
        # "X but Y": the clause after "but" decides.
        first = clause(rng, not positive)
        return first + ["but"] + clause(rng, positive)[:MAX_LEN], int(positive)
    return clause(rng, positive), int(positive)


def corpus(n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        words, label = sentence(rng)
        if len(words) <= MAX_LEN:
            out.append((words, label))
    return out


class Encoder(torch.nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.heads, self.dk = heads, d // heads
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.ff1, self.ff2 = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)

    def forward(self, x, pad):  # x [B,S,D], pad [B,1,1,S] bool
        b, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.reshape(b, s, self.heads, self.dk).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dk)
        scores = torch.where(pad, torch.full_like(scores, -1e4), scores)
        att = torch.softmax(scores, dim=-1) @ v
        x = self.ln1(x + self.proj(att.transpose(1, 2).reshape(b, s, d)))
        return self.ln2(x + self.ff2(torch.nn.functional.gelu(self.ff1(x))))


class Classifier(torch.nn.Module):
    def __init__(self, vocab, d=32, heads=4, ff=64, layers=2):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(MAX_LEN, d)
        self.layers = torch.nn.ModuleList(Encoder(d, heads, ff) for _ in range(layers))
        self.out = torch.nn.Linear(d, 2)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        pad = (tokens == 0).unsqueeze(1).unsqueeze(2)
        for layer in self.layers:
            x = layer(x, pad)
        keep = (tokens != 0).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.out(pooled)


def encode(sentences, vocab):
    ids = torch.zeros(len(sentences), MAX_LEN, dtype=torch.int64)
    for i, words in enumerate(sentences):
        for j, w in enumerate(words):
            ids[i, j] = vocab.get(w, 1)
    return ids


def main():
    seed_everything()
    train_set, test_set = corpus(4000, 1), corpus(1000, 2)
    words = sorted({w for s, _ in train_set for w in s})
    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    xtr, ytr = encode([s for s, _ in train_set], vocab), torch.tensor([l for _, l in train_set])
    xte, yte = encode([s for s, _ in test_set], vocab), torch.tensor([l for _, l in test_set])
    model = Classifier(len(vocab))
    train(model, torch.nn.functional.cross_entropy, xtr, ytr, epochs=25, lr=2e-3)
    with torch.inference_mode():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    export(model, "transformer_sentiment", [xte[:16]], ["tokens"], ["logits"],
           {"tokens": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
           {"test_accuracy": round(acc, 4), "train_samples": len(xtr), "test_samples": len(xte),
            "vocab_size": len(vocab), "max_len": MAX_LEN},
           "2-layer transformer encoder sentiment classifier; input: token ids [batch, seq] "
           "(0 = padding, see vocab.json); output: logits [negative, positive]")
    with open(os.path.join(HERE, "transformer_sentiment", "vocab.json"), "w") as f:
        json.dump(vocab, f, indent=0, sort_keys=True)
        f.write("\n")
    with open(os.path.join(HERE, "transformer_sentiment", "reference", "sentences.txt"), "w") as f:
        for words, label in test_set[:16]:
            f.write(f"{label}\t{' '.join(words)}\n")


if __name__ == "__main__":
    main()
