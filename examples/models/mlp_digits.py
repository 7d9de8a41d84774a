"""An MLP (64-128-64-10) classifying sklearn's 8x8 digits. Inputs are pixel values 0..16 scaled
to 0..1 inside the model, so clients send raw pixels."""
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from common import export, seed_everything, train


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 10))

    def forward(self, pixels):
        return self.net(pixels / 16.0)


def main():
    seed_everything()
    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    xtr, xte = torch.tensor(xtr, dtype=torch.float32), torch.tensor(xte, dtype=torch.float32)
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    model = MLP()
    train(model, torch.nn.functional.cross_entropy, xtr, ytr, epochs=60, lr=2e-3)
    with torch.inference_mode():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    export(model, "mlp_digits", [xte[:16]], ["pixels"], ["logits"],
           {"pixels": {0: "batch"}, "logits": {0: "batch"}},
           {"test_accuracy": round(acc, 4), "train_samples": len(xtr), "test_samples": len(xte)},
           "MLP 64-128-64-10 on sklearn digits; input: 64 raw pixels (0-16); output: 10 logits")


if __name__ == "__main__":
    main()
