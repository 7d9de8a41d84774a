"""Logistic regression on sklearn's breast_cancer data set (30 features). Standardisation is part
of the model (constants from the training split), so clients send the raw features; the output
is the probability of the malignant class."""
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from common import export, seed_everything, train


class Logistic(torch.nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = torch.nn.Linear(30, 1)

    def forward(self, features):
        return torch.sigmoid(self.linear((features - self.mean) / self.std))


def main():
    seed_everything()
    d = load_breast_cancer()
    # sklearn labels 0 = malignant; the model predicts P(malignant).
    y = (d.target == 0).astype("float32")
    xtr, xte, ytr, yte = train_test_split(d.data, y, test_size=0.25, random_state=0, stratify=y)
    xtr, xte = torch.tensor(xtr, dtype=torch.float32), torch.tensor(xte, dtype=torch.float32)
    ytr, yte = torch.tensor(ytr).unsqueeze(1), torch.tensor(yte).unsqueeze(1)
    model = Logistic(xtr.mean(0), xtr.std(0))
    train(model, torch.nn.functional.binary_cross_entropy, xtr, ytr, epochs=200, lr=1e-2,
          weight_decay=1e-4)
    with torch.inference_mode():
        acc = ((model(xte) > 0.5).float() == yte).float().mean().item()
    export(model, "logistic_breast_cancer", [xte[:16]], ["features"], ["probability"],
           {"features": {0: "batch"}, "probability": {0: "batch"}},
           {"test_accuracy": round(acc, 4), "train_samples": len(xtr), "test_samples": len(xte)},
           "Logistic regression on sklearn breast_cancer; input: 30 raw features; output: P(malignant)")


if __name__ == "__main__":
    main()
