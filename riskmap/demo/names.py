"""Chinese place and person names for the demo county, composed from syllable lists.

Examples
--------
>>> import numpy as np
>>> names = unique_names(np.random.default_rng(0), 5, "村")
>>> len(set(names)), all(n.endswith("村") for n in names)
(5, True)
"""

from __future__ import annotations

import numpy as np

FIRST = tuple("上下大小东西南北新老石黄白青龙马高长中前后金银桃李杨柳枫竹松梅荷花樟樟桥湖沙泥田")
SECOND = tuple("桥塘坑坪岭田洞坝湾冲岗口山溪源坳背头寨垌村屋围坊铺岩岭洲埠陂圳")
SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁于余叶蒋杜苏魏程吕丁沈任姚卢钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江阎薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = tuple("伟芳娜秀敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华建国文辉红玉兰志海燕春梅林峰")


def unique_names(rng: np.random.Generator, n: int, suffix: str, taken: set[str] | None = None) -> list[str]:
    """``n`` distinct two-syllable names ending in ``suffix`` (three syllables when two run out)."""
    seen = set() if taken is None else set(taken)
    out: list[str] = []
    first = np.array(sorted(set(FIRST)))
    second = np.array(sorted(set(SECOND)))
    tries = 0
    while len(out) < n:
        tries += 1
        name = str(rng.choice(first)) + str(rng.choice(second))
        if tries > 40 * n:
            name = str(rng.choice(first)) + name
        name += suffix
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def person_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` person names (surname + one or two given-name characters), not necessarily unique."""
    sur = rng.choice(np.array(SURNAMES), n)
    g1 = rng.choice(np.array(GIVEN), n)
    g2 = rng.choice(np.array(GIVEN), n)
    two = rng.random(n) < 0.7
    return [f"{s}{a}{b}" if t else f"{s}{a}" for s, a, b, t in zip(sur, g1, g2, two, strict=True)]
