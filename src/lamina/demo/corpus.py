"""Bilingual training text for the tiny SentencePiece tokenizers lamina builds.

The synthetic models (tests, ``lamina demo``, benchmarks) need a tokenizer that
behaves like Chinese-LLaMA's: a LLaMA-style SentencePiece BPE model with byte
fallback, trained on Chinese and English text, plus an "extended" version with
extra Chinese pieces appended (the way Chinese-LLaMA grew LLaMA's 32000 pieces
to 49953). This text was written for lamina; nothing is downloaded.
"""

from __future__ import annotations

BASE_TEXT = """\
The quick brown fox jumps over the lazy dog near the river bank.
Local language models run on laptops when their weights are quantized to four bits.
A tokenizer splits text into pieces; unknown characters fall back to raw bytes.
Machine learning needs data, compute, and a lot of patience from the people who train it.
The weather today is sunny with a light breeze from the west, perfect for a walk.
Please summarize the following article in three sentences and list the key people.
Named entity recognition finds people, places, and organizations in a sentence.
Relation extraction links two entities with a labelled relation such as born in.
Event extraction finds a trigger word and the arguments that play a role in the event.
Alice moved from Paris to Berlin in 2019 and started working for a small robotics company.
The library opens at nine in the morning and closes at six in the evening on weekdays.
Numbers like 3.14, 2024, and 42 are split into single digits by the tokenizer.
Hello world! How are you doing today? I am fine, thank you very much.
Shanghai and Beijing are large cities; Hangzhou is famous for the West Lake.
人工智能正在改变我们的生活方式，大语言模型可以在笔记本电脑上运行。
今天天气很好，我们一起去公园散步吧。
北京是中国的首都，上海是中国最大的城市之一。
命名实体识别的任务是从文本中找出人名、地名和机构名。
关系抽取需要找出两个实体之间的关系，例如出生地和工作单位。
事件抽取包括触发词识别和论元角色的识别。
张三在二零一九年从杭州搬到了深圳，加入了一家人工智能公司。
李四毕业于清华大学，现在在北京大学担任教授。
请用三句话总结下面这篇文章，并列出文章中提到的人物。
模型量化可以把七十亿参数的模型从十三个吉字节压缩到不到四个吉字节。
中文词表扩充以后，一个汉字通常只需要一个词元就能表示。
我喜欢读书、写字、听音乐，也喜欢和朋友们一起爬山。
西湖位于浙江省杭州市，是中国著名的风景名胜区。
长江是中国最长的河流，黄河被称为中华民族的母亲河。
小明的妈妈是一名医生，她在市第一人民医院工作。
公司在深圳召开了新闻发布会，发布了新一代的智能手机。
这本书讲述了一个年轻人离开家乡、追求梦想的故事。
会议将于下周三上午九点在三楼会议室举行，请准时参加。
机器学习需要数据、算力，还需要研究人员的耐心。
你好！请问你叫什么名字？我叫小红，很高兴认识你。
Mixed text: 我们使用 LLaMA 模型和 LoRA 补丁，在 CPU 上运行 GGUF 文件。
The 2023 report says 北京 has 21 million people and 上海 has about 24 million.
"""

# Extra pieces for the "extended vocabulary" tokenizer: whole Chinese words,
# as Chinese-LLaMA added, so that a LoRA with modules_to_save must resize
# embed_tokens and lm_head.
EXTRA_PIECES = [
    "人工智能", "语言模型", "笔记本", "天气", "公园", "散步", "首都", "城市",
    "命名实体", "识别", "关系", "抽取", "事件", "触发词", "论元", "角色",
    "张三", "李四", "杭州", "深圳", "北京", "上海", "清华大学", "北京大学", "教授",
    "总结", "文章", "人物", "量化", "参数", "词表", "扩充", "读书", "音乐",
    "朋友", "爬山", "西湖", "浙江省", "风景", "长江", "黄河", "医生", "医院",
    "公司", "发布会", "智能手机", "故事", "会议", "机器学习", "数据", "算力",
    "研究人员", "你好", "名字", "认识", "地理位置", "组织机构", "时间",
]

SAMPLE_PROMPTS = [
    "北京是中国的首都。",
    "The quick brown fox jumps over the lazy dog.",
    "张三在杭州的一家人工智能公司工作。",
    "Mixed 中英文 text with numbers 123 and emoji 🙂.",
    "请介绍一下西湖。",
]
