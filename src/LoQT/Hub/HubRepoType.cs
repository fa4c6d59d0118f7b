namespace LoQT.Hub;

/// <summary>The kind of Hugging Face Hub repository; it decides URL prefixes and the cache folder name.</summary>
public enum HubRepoType
{
    /// <summary>A model repository (<c>{endpoint}/{id}</c>, cache folder <c>models--org--name</c>).</summary>
    Model,

    /// <summary>A dataset repository (<c>{endpoint}/datasets/{id}</c>, cache folder <c>datasets--org--name</c>).</summary>
    Dataset,

    /// <summary>A Space (<c>{endpoint}/spaces/{id}</c>, cache folder <c>spaces--org--name</c>).</summary>
    Space,
}
