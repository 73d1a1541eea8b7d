"""The built-in text ``lamina verify`` and ``lamina build`` measure quality on.

Written for lamina (nothing copied): everyday Chinese and English prose on the
topics the product deals with, in roughly equal parts, so that both the
Chinese pieces of an extended vocabulary and plain English are exercised.
Long enough for several 256-token windows on a real Chinese-LLaMA tokenizer.
"""

from __future__ import annotations

SAMPLE_TEXT = """\
清晨六点，小城的早市已经热闹起来。卖豆浆的老张一边招呼客人，一边把刚出锅的油条摆在竹筐里。\
隔壁的水果摊上，橘子、苹果和葡萄堆得整整齐齐，摊主说今年雨水多，葡萄特别甜。\
上学的孩子背着书包跑过街口，路边的早餐店里坐满了赶着上班的人。

Every morning the river path fills with people who walk before work. Some carry coffee, \
some listen to the radio, and a few stop to watch the fishermen who have been there since dawn. \
Nobody is in a hurry for the first hour; the city only starts to rush after eight o'clock.

我们的图书馆每周二和周四晚上开放到九点。借书需要带上借书证，每人最多可以借五本，借期为三十天。\
如果需要续借，可以在网站上办理，也可以打电话给前台。新到的图书放在一楼入口右侧的书架上，\
欢迎大家借阅。儿童阅览室在二楼，周末上午有志愿者给小朋友讲故事。

A small team built a weather station on the roof of the school. It measures temperature, \
humidity, wind speed and rainfall every ten minutes and sends the numbers to a web page. \
The students check the data each afternoon and compare it with the official forecast. \
Last spring they noticed that the roof was always two degrees warmer than the park nearby.

去年秋天，王老师带着学生去乡下参观了一座有三百年历史的古村。村里的房子大多是青砖黛瓦，\
巷子窄而深，石板路被人们走得又光又滑。村口有一棵大樟树，据说是建村时种下的。\
学生们采访了几位老人，记录了村里的传说和节日习俗，回来后写成了一本小册子。

Language models learn by predicting the next word in a sentence. When a model is made smaller \
by storing its weights with fewer bits, its predictions change a little. A careful comparison \
measures how much: if the smaller model still picks the same next word almost every time, \
and its probabilities stay close to the original ones, the loss in quality is small.

周末的时候，我喜欢去城西的公园骑自行车。公园里有一条环湖的小路，全长大约八公里，\
路两边种满了柳树和桂花树。秋天桂花开的时候，整条路都是香的。骑完一圈，\
我通常会在湖边的茶馆坐一会儿，要一壶绿茶，看看湖上的游船和远处的山。

The museum will close for renovation from the first of March until the end of June. \
During this time the most important paintings will travel to a partner museum in another city. \
Visitors who bought annual tickets can ask for a refund or extend their membership by four months. \
The café and the gift shop will stay open on weekends.

医生提醒大家，冬季要注意保暖，适当运动，保证充足的睡眠。饮食上可以多吃蔬菜和水果，\
少吃油腻和辛辣的食物。如果出现发烧、咳嗽等症状，应及时就医，不要自行服用抗生素。\
老人和孩子抵抗力较弱，更要注意预防感冒。

My grandmother kept a notebook of recipes for fifty years. The early pages are written in pencil \
and list ingredients by the cup; the later ones use grams and include notes about which neighbours \
liked which cake. When she moved into a smaller flat, she gave a copy of the notebook to each \
of her grandchildren, with a short letter on the first page.

这家公司成立于二零一五年，总部设在杭州，主要开发面向中小企业的财务软件。\
公司现有员工两百多人，其中一半以上是研发人员。去年，公司推出了一款手机应用，\
用户可以用它拍照记账、自动生成报表，上线半年就吸引了十多万家企业使用。

The train from the coast to the mountains takes about four hours. For the first half of the trip \
the line follows the river through farmland and small towns; then it climbs slowly through forests \
and tunnels. Most travellers sit on the left side, because that is where the lakes appear \
just before the last station.
"""
