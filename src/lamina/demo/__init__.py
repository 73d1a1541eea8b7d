"""What ``lamina demo`` ships: a tiny Chinese-LLaMA-like base, two LoRA patches made
on the spot (one trained on a few answers), and the demo job that builds, chats and
extracts with them. Needs the ``convert`` extra; no product code imports this package.
"""
