#!/usr/bin/env python3
"""make_cjk_bench_text.py — a multi-MB Chinese/Japanese/Korean text for the tokenizer benchmark.

    python3 tools/reference/make_cjk_bench_text.py OUT.txt [MEGABYTES]   (default 4)

No public-domain CJK corpus is in the repository, so this composes one: the sentences below (written
for this purpose, free of rights) are drawn at random (fixed seed, so the file is the same on every
machine), with random numbers, years and names mixed in so that the text is not one paragraph
repeated, grouped into paragraphs of 3 to 8 sentences. About 70% Chinese, 20% Japanese, 10% Korean
by sentence count.
"""
import random
import sys

ZH = [
    "今天早上天气很好，我们一起去公园散步。", "人工智能正在改变我们的生活方式和工作方式。", "这座城市有很多历史悠久的建筑和美丽的街道。",
    "他每天晚上都会读一个小时的书，然后才去睡觉。", "大型语言模型需要大量的计算资源来进行训练。", "春天来了，山上的花都开了，空气里有淡淡的香味。",
    "我们应该珍惜时间，努力学习新的知识和技能。", "这家餐厅的菜很好吃，但是价格有点贵。", "科学家们发现了一种新的方法来保护海洋环境。",
    "火车站离这里不远，走路大概需要十五分钟。", "孩子们在操场上玩得非常开心，笑声传得很远。", "经济的发展离不开教育和技术的进步。",
    "请把这份文件发给所有参加会议的人。", "她从小就喜欢画画，现在已经是一名有名的画家了。", "这个问题比我们想象的要复杂得多。",
    "长江是中国最长的河流，全长六千多公里。", "每个人都有自己的梦想，也都有实现梦想的权利。", "图书馆里非常安静，只能听到翻书的声音。",
    "下雨的时候，我喜欢坐在窗边喝一杯热茶。", "这台电脑的处理速度比以前的快了很多。", "我们需要更多的数据来验证这个假设是否正确。",
    "老人们常说，读万卷书不如行万里路。", "这部电影讲述了一个关于友情和勇气的故事。", "在这个项目中，团队合作是成功的关键。",
    "秋天的北京特别美，树叶变成了金黄色和红色。", "医生建议他多运动，少吃油腻的食物。", "网络安全已经成为每个公司都必须重视的问题。",
    "这条河上有一座古老的石桥，已经有几百年的历史了。", "他们计划明年夏天去西藏旅行。", "语言是文化的载体，也是交流的工具。",
    "新的政策将从下个月开始实施。", "这本书的作者用简单的语言解释了复杂的理论。", "晚饭以后，全家人一起看电视聊天。",
    "机器学习模型的效果很大程度上取决于数据的质量。", "中国的传统节日包括春节、端午节和中秋节。", "我已经很久没有见到我的大学同学了。",
    "这个软件可以自动把中文翻译成英文。", "城市交通拥堵是一个需要长期解决的问题。", "他用了三年的时间才完成这部小说。",
    "山顶上的风景非常壮观，可以看到整个城市。", "学习编程需要耐心，也需要不断地练习。", "超市里的水果很新鲜，价格也很合理。",
]
JA = [
    "今日はとても良い天気なので、公園へ散歩に行きましょう。", "日本語の文章には、ひらがな、カタカナ、漢字が使われています。",
    "東京は世界で最も人口の多い都市の一つです。", "彼は毎朝コーヒーを飲みながら新聞を読みます。", "この店のラーメンはとても美味しいと評判です。",
    "新しいプロジェクトは来月から始まる予定です。", "桜の花が咲く季節になると、多くの人がお花見をします。", "人工知能の研究は急速に進んでいます。",
    "電車が遅れたので、会議に少し遅刻してしまいました。", "週末は家族と一緒に映画を見に行くつもりです。", "この問題について、もう一度よく考えてみてください。",
    "富士山は日本で一番高い山として知られています。", "図書館で借りた本を来週までに返さなければなりません。", "彼女はピアノを弾くのがとても上手です。",
    "京都には古いお寺や神社がたくさんあります。", "コンピューターの性能は年々向上しています。", "雨が降りそうなので、傘を持って行ったほうがいいですよ。",
]
KO = [
    "오늘은 날씨가 정말 좋아서 공원에 산책을 갔습니다.", "한국어는 한글이라는 고유한 문자를 사용합니다.", "서울은 한국의 수도이며 인구가 가장 많은 도시입니다.",
    "저는 매일 아침 커피를 마시면서 뉴스를 읽습니다.", "인공지능 기술은 우리 생활을 크게 바꾸고 있습니다.", "이번 주말에는 친구들과 함께 영화를 보러 갈 예정입니다.",
    "이 식당의 음식은 맛있고 가격도 저렴합니다.", "새로운 프로젝트는 다음 달부터 시작됩니다.",
]
NAMES = ["王明", "李华", "张伟", "刘洋", "陈静", "田中", "佐藤", "鈴木", "김민수", "이지은"]


def sentence(rng):
    r = rng.random()
    s = rng.choice(ZH) if r < 0.7 else rng.choice(JA) if r < 0.9 else rng.choice(KO)
    k = rng.random()
    if k < 0.15:
        s = f"{rng.randint(1950, 2030)}年，" + s
    elif k < 0.25:
        s = rng.choice(NAMES) + "说：“" + s + "”"
    elif k < 0.32:
        s = s[:-1] + f"（{rng.randint(1, 999)}）" + s[-1]
    return s


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    target = int(float(sys.argv[2]) * 1e6) if len(sys.argv) > 2 else 4_000_000
    rng = random.Random(20240611)
    out, size = [], 0
    while size < target:
        para = "".join(sentence(rng) for _ in range(rng.randint(3, 8)))
        out.append(para)
        size += len(para.encode("utf-8")) + 2
    with open(sys.argv[1], "w", encoding="utf-8", newline="\n") as f:
        f.write("\n\n".join(out) + "\n")


if __name__ == "__main__":
    main()
