"""The subset of the 1C:УТ 11.5 standard OData interface the pipeline reads and writes.

One place for entity-set names, field names and their EDM types: the extraction
`$select`s, the `$metadata` check and the emulator all read it, so they cannot drift.
Field names are exact (Cyrillic included); never split a set name on ``_``.
"""

from __future__ import annotations

GUID = "Edm.Guid"
STRING = "Edm.String"
DATETIME = "Edm.DateTime"
BOOLEAN = "Edm.Boolean"
DOUBLE = "Edm.Double"
INT32 = "Edm.Int32"
INT64 = "Edm.Int64"

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"

_RECEIPT_HEADER = {
    "Ref_Key": GUID,
    "Number": STRING,
    "Date": DATETIME,
    "Posted": BOOLEAN,
    "DeletionMark": BOOLEAN,
    "Организация_Key": GUID,
    "ХозяйственнаяОперация": STRING,
    "СуммаДокумента": DOUBLE,
}
_RECEIPT_ROWS = {
    "Ref_Key": GUID,
    "LineNumber": INT64,
    "Партнер_Key": GUID,
    "Сумма": DOUBLE,
    "ОбъектРасчетов_Key": GUID,
}

#: entity set -> {field: EDM type}; the fields the pipeline reads (in `$select`).
READ_SETS: dict[str, dict[str, str]] = {
    "Document_ЗаказКлиента": {
        "Ref_Key": GUID,
        "Number": STRING,
        "Date": DATETIME,
        "Posted": BOOLEAN,
        "DeletionMark": BOOLEAN,
        "Партнер_Key": GUID,
        "Контрагент_Key": GUID,
        "Организация_Key": GUID,
        "Договор_Key": GUID,
        "Менеджер_Key": GUID,
        "СуммаДокумента": DOUBLE,
        "Валюта_Key": GUID,
        "Статус": STRING,
        "ПорядокРасчетов": STRING,
        "ОбъектРасчетов_Key": GUID,
    },
    "Document_ЗаказКлиента_ЭтапыГрафикаОплаты": {
        "Ref_Key": GUID,
        "LineNumber": INT64,
        "ДатаПлатежа": DATETIME,
        "СуммаПлатежа": DOUBLE,
        "ПроцентПлатежа": DOUBLE,
        "ВариантОплаты": STRING,
    },
    "Catalog_ОбъектыРасчетов": {
        "Ref_Key": GUID,
        "Объект": STRING,
        "Объект_Type": STRING,
        "ТипОбъектаРасчетов": STRING,
        "Партнер_Key": GUID,
        "Организация_Key": GUID,
    },
    "Document_ПоступлениеБезналичныхДенежныхСредств": dict(_RECEIPT_HEADER),
    "Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа": dict(_RECEIPT_ROWS),
    "Document_ПриходныйКассовыйОрдер": dict(_RECEIPT_HEADER),
    "Document_ПриходныйКассовыйОрдер_РасшифровкаПлатежа": dict(_RECEIPT_ROWS),
    "Catalog_Партнеры": {
        "Ref_Key": GUID,
        "Code": STRING,
        "Description": STRING,
        "НаименованиеПолное": STRING,
        "ОсновнойМенеджер_Key": GUID,
        "ЮрФизЛицо": STRING,
        "Клиент": BOOLEAN,
        "DeletionMark": BOOLEAN,
    },
    "Catalog_Партнеры_КонтактнаяИнформация": {
        "Ref_Key": GUID,
        "LineNumber": INT64,
        "Тип": STRING,
        "Вид_Key": GUID,
        "АдресЭП": STRING,
        "НомерТелефона": STRING,
        "Представление": STRING,
    },
    "Catalog_ВидыКонтактнойИнформации": {
        "Ref_Key": GUID,
        "Description": STRING,
        "PredefinedDataName": STRING,
    },
    "Catalog_Контрагенты": {
        "Ref_Key": GUID,
        "Description": STRING,
        "НаименованиеПолное": STRING,
        "ИНН": STRING,
        "КПП": STRING,
        "Партнер_Key": GUID,
        "ЮрФизЛицо": STRING,
    },
    "Catalog_ДоговорыКонтрагентов": {
        "Ref_Key": GUID,
        "Номер": STRING,
        "Дата": DATETIME,
        "Description": STRING,
        "Партнер_Key": GUID,
        "Контрагент_Key": GUID,
        "Организация_Key": GUID,
        "ПорядокРасчетов": STRING,
        "УстановленСрокОплаты": BOOLEAN,
        "СрокОплаты": INT32,
        "Статус": STRING,
    },
    "Catalog_Пользователи": {
        "Ref_Key": GUID,
        "Description": STRING,
        "Недействителен": BOOLEAN,
    },
    "Catalog_Пользователи_КонтактнаяИнформация": {
        "Ref_Key": GUID,
        "LineNumber": INT64,
        "Тип": STRING,
        "АдресЭП": STRING,
        "НомерТелефона": STRING,
        "Представление": STRING,
    },
    "Catalog_Организации": {
        "Ref_Key": GUID,
        "Description": STRING,
        "НаименованиеПолное": STRING,
        "ИНН": STRING,
        "КПП": STRING,
    },
    "Catalog_СегментыПартнеров": {
        "Ref_Key": GUID,
        "Description": STRING,
    },
    "InformationRegister_ПартнерыСегмента": {
        "Сегмент_Key": GUID,
        "Партнер_Key": GUID,
    },
}

#: entity set -> the fields of its big sets whose few distinct values repeat over millions of
#: rows (partners, organizations, contracts, enumerations, stage dates): the client keeps them
#: dictionary-encoded (pandas categoricals), a 1-4 byte code per row instead of ~40 bytes of
#: text. Unique references (Ref_Key, ОбъектРасчетов_Key) stay text; timestamps: `DATE_FIELDS`.
REPEATING_FIELDS: dict[str, tuple[str, ...]] = {
    "Document_ЗаказКлиента": ("Партнер_Key", "Контрагент_Key", "Организация_Key", "Договор_Key",
                              "Менеджер_Key", "Валюта_Key", "Статус", "ПорядокРасчетов"),
    "Document_ЗаказКлиента_ЭтапыГрафикаОплаты": ("LineNumber", "ДатаПлатежа", "ВариантОплаты"),
    "Catalog_ОбъектыРасчетов": ("Объект_Type", "ТипОбъектаРасчетов", "Партнер_Key", "Организация_Key"),
    "Document_ПоступлениеБезналичныхДенежныхСредств": ("Организация_Key", "ХозяйственнаяОперация"),
    "Document_ПоступлениеБезналичныхДенежныхСредств_РасшифровкаПлатежа": ("LineNumber", "Партнер_Key"),
    "Document_ПриходныйКассовыйОрдер": ("Организация_Key", "ХозяйственнаяОперация"),
    "Document_ПриходныйКассовыйОрдер_РасшифровкаПлатежа": ("LineNumber", "Партнер_Key"),
}

#: entity set -> its timestamp fields that are not `REPEATING_FIELDS`: the client parses each
#: page's 1C timestamps ('2026-03-20T10:15:00') as it reads them, 8 bytes a row instead of ~27 of
#: text, so normalise gets them typed (a page with any other text keeps the text, for the gate).
DATE_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(f for f, kind in fields.items() if kind == DATETIME and f not in REPEATING_FIELDS.get(name, ()))
    for name, fields in READ_SETS.items()}

#: entity set -> {field: EDM type}; objects the pipeline creates (POST) and reads back.
WRITE_SETS: dict[str, dict[str, str]] = {
    "Task_ЗадачаИсполнителя": {
        "Ref_Key": GUID,
        "DataVersion": STRING,
        "Number": STRING,
        "Date": DATETIME,
        "DeletionMark": BOOLEAN,
        "Description": STRING,
        "BusinessProcess": STRING,
        "BusinessProcess_Type": STRING,
        "Executed": BOOLEAN,
        "Автор": STRING,
        "Автор_Type": STRING,
        "Важность": STRING,
        "ДатаНачала": DATETIME,
        "Описание": STRING,
        "Предмет": STRING,
        "Предмет_Type": STRING,
        "ПредметСтрокой": STRING,
        "ПринятаКИсполнению": BOOLEAN,
        "СостояниеБизнесПроцесса": STRING,
        "СрокИсполнения": DATETIME,
        "Исполнитель": STRING,
        "Исполнитель_Type": STRING,
    },
    "Document_CRM_Интерес": {
        "Ref_Key": GUID,
        "DataVersion": STRING,
        "Number": STRING,
        "Date": DATETIME,
        "Posted": BOOLEAN,
        "DeletionMark": BOOLEAN,
        "Тема": STRING,
        "ДокументОснование": STRING,
        "ДокументОснование_Type": STRING,
        "Партнер_Key": GUID,
        "Ответственный_Key": GUID,
        "Комментарий": STRING,
    },
    "Catalog_СделкиСКлиентами": {
        "Ref_Key": GUID,
        "DataVersion": STRING,
        "Code": STRING,
        "Description": STRING,
        "DeletionMark": BOOLEAN,
        "Партнер_Key": GUID,
        "Ответственный_Key": GUID,
        "Статус": STRING,
        "ДатаНачала": DATETIME,
        "ПотенциальнаяСуммаПродажи": DOUBLE,
        "Комментарий": STRING,
    },
}

ORDER_TYPE = "StandardODATA.Document_ЗаказКлиента"
USER_TYPE = "StandardODATA.Catalog_Пользователи"
UNDEFINED_TYPE = "StandardODATA.Undefined"
CUSTOMER_PAYMENT = "ПоступлениеОплатыОтКлиента"
EMAIL_CONTACT = "АдресЭлектроннойПочты"
PHONE_CONTACT = "Телефон"
PRIVATE_PERSON = "ЧастноеЛицо"
#: settlement procedures where an order is its own settlement object
ORDER_SETTLEMENTS = ("ПоЗаказам", "ПоЗаказамНакладным")
SETTLEMENT_PROCEDURES = (
    "ПоДоговорамКонтрагентов",
    "ПоЗаказам",
    "ПоДоговорамНакладным",
    "ПоЗаказамНакладным",
    "ПоНакладным",
)
ORDER_STATUSES = ("НеСогласован", "КОбеспечению", "КОтгрузке", "Закрыт")
