import LiteCNN
print("litecnn")
