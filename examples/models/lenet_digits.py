"""A LeNet-style CNN on sklearn's 8x8 digits: two conv/relu/maxpool stages and two dense layers.
Input is [batch, 1, 8, 8] raw pixels (0..16)."""
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from common import export, seed_everything, train


class LeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.head = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(16 * 2 * 2, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 10))

    def forward(self, image):
        return self.head(self.features(image / 16.0))


def main():
    seed_everything()
    d = load_digits()
    x = d.data.reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    xtr, xte = torch.tensor(xtr, dtype=torch.float32), torch.tensor(xte, dtype=torch.float32)
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    model = LeNet()
    train(model, torch.nn.functional.cross_entropy, xtr, ytr, epochs=40, lr=2e-3)
    with torch.inference_mode():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    export(model, "lenet_digits", [xte[:16]], ["image"], ["logits"],
           {"image": {0: "batch"}, "logits": {0: "batch"}},
           {"test_accuracy": round(acc, 4), "train_samples": len(xtr), "test_samples": len(xte)},
           "LeNet-style CNN on sklearn digits; input: [batch,1,8,8] raw pixels (0-16); output: 10 logits")


if __name__ == "__main__":
    main()
